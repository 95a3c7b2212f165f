"""moord restarted under running pods: with live-restore they run on and are served
again; without it they stop with the daemon, and StopPodSandbox still tears their
network down from the pod's record."""

from __future__ import annotations

import os
import tempfile

from crikit import (
    Network,
    container_config,
    exec_sync,
    load_images,
    pod_config,
    remove_all_pods,
    run_container,
    start_cri,
)
from enginekit import stop_daemon

from moorage.cri.proto import api_pb2 as pb


def _addresses(network: Network) -> list[str]:
    directory = os.path.join(network.ipam_dir, "moorage-test")
    return [f for f in os.listdir(directory) if f[0].isdigit()] \
        if os.path.isdir(directory) else []


def test_restart_with_pods_running(network: Network, busybox_tar: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="cri-restart-") as base:
        logs = os.path.join(base, "pods")
        os.makedirs(logs)
        cri = start_cri(base, network, "--live-restore")
        try:
            load_images(cri, busybox_tar, base)
            config = pod_config("survivor", logs)
            pod_id = cri.runtime.RunPodSandbox(pb.RunPodSandboxRequest(
                config=config)).pod_sandbox_id
            container = run_container(cri, pod_id, config, container_config(
                "ticker", ["sh", "-c", "echo before; read line; echo $line; sleep 3600"],
                stdin=True))
            address = cri.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(
                pod_sandbox_id=pod_id)).status.network.ip
            assert _addresses(network) == [address]
        finally:
            cri.close()
            stop_daemon(cri.daemon)

        cri = start_cri(base, network, "--live-restore")
        try:
            status = cri.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(
                pod_sandbox_id=pod_id)).status
            assert (status.state, status.network.ip) == (pb.SANDBOX_READY, address)
            assert cri.runtime.ContainerStatus(pb.ContainerStatusRequest(
                container_id=container)).status.state == pb.CONTAINER_RUNNING
            assert exec_sync(cri, container, "cat", "/proc/1/cmdline").exit_code == 0
            # The CRI's images stay its own: the Docker API still lists none of them.
            assert cri.daemon.docker("images", "-q", check=True).stdout == b""
            assert len(cri.images.ListImages(pb.ListImagesRequest()).images) == 2
        finally:
            cri.close()
            stop_daemon(cri.daemon)  # without live-restore at the next start: all stop

        cri = start_cri(base, network)
        try:
            status = cri.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(
                pod_sandbox_id=pod_id)).status
            assert status.state == pb.SANDBOX_NOTREADY
            cri.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            assert _addresses(network) == []
            cri.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            assert cri.runtime.ListContainers(pb.ListContainersRequest()).containers == []
        finally:
            try:
                remove_all_pods(cri)
            finally:  # the daemon stops even when its pods could not be removed
                cri.close()
                stop_daemon(cri.daemon)
