"""crictl (cri-tools v1.26.1, built as the README says; $CRICTL or on PATH) against
moord's CRI: the commands an operator drives a node's runtime with, each checked by
what it prints or does. Skipped where crictl is not built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest
from crikit import (
    BUSYBOX_IMAGE,
    POD_CGROUPS,
    Cri,
    Network,
    image_archive,
    running,
)
from registrykit import free_port, skopeo, start_distribution, stop_server

CRICTL = os.environ.get("CRICTL") or shutil.which("crictl") or "/tmp/critools/build/crictl"


@pytest.fixture(scope="module")
def moord(network: Network, busybox_tar: bytes) -> Iterator[Cri]:
    if not os.access(CRICTL, os.X_OK):
        pytest.skip("needs crictl from cri-tools v1.26.1 (README: the CRI validation suite)")
    with running("moord", network, busybox_tar) as found:
        yield found


def _crictl(cri: Cri, *args: str) -> str:
    return subprocess.run([CRICTL, "-r", f"unix://{cri.socket}", "-i", f"unix://{cri.socket}",
                           *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_crictl_drives_a_pod(moord: Cri, busybox_tar: bytes, logs: str) -> None:
    info = json.loads(_crictl(moord, "info"))
    assert {c["type"]: c["status"] for c in info["status"]["conditions"]} \
        == {"RuntimeReady": True, "NetworkReady": True}
    with tempfile.TemporaryDirectory(prefix="crictl-registry-") as storage:
        registry = start_distribution(storage)
        try:
            with open(os.path.join(storage, "image.tar"), "wb") as f:
                f.write(image_archive(busybox_tar, {"127.0.0.1/pulled:1": ["true"]}))
            pulled = f"{registry.host}/pulled:1"
            skopeo("copy", "-q", "--dest-tls-verify=false",
                   f"docker-archive:{storage}/image.tar", f"docker://{pulled}")
            _crictl(moord, "pull", pulled)
        finally:
            stop_server(registry)
    assert f"{registry.host}/pulled" in _crictl(moord, "images")

    folder = os.path.dirname(logs)
    pod = os.path.join(folder, "pod.json")
    with open(pod, "w") as f:
        json.dump({"metadata": {"name": "crictl", "namespace": "test", "uid": "crictl-uid"},
                   "hostname": "crictl", "log_directory": logs,
                   "linux": {"cgroup_parent": f"/{POD_CGROUPS}/crictl"}}, f)
    container = os.path.join(folder, "container.json")
    with open(container, "w") as f:
        json.dump({"metadata": {"name": "web"}, "image": {"image": BUSYBOX_IMAGE},
                   "log_path": "web.log", "command": [
                       "sh", "-c", "echo one; echo two; mkdir /www; echo hello > "
                       "/www/index.html; exec httpd -f -p 80 -h /www"]}, f)
    pod_id = _crictl(moord, "runp", pod).strip()
    container_id = _crictl(moord, "create", pod_id, container, pod).strip()
    _crictl(moord, "start", container_id)
    assert container_id[:13] in _crictl(moord, "ps")

    # exec -it with a terminal (script(1) gives crictl one)
    shown = subprocess.run(
        ["script", "-qec", f"{CRICTL} -r unix://{moord.socket} exec -it {container_id} "
         "sh -c 'tty; echo $((20 + 22))'", "/dev/null"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL).stdout
    assert "/dev/pts/" in shown and "42" in shown

    following = subprocess.Popen([CRICTL, "-r", f"unix://{moord.socket}", "logs", "-f",
                                  container_id], stdout=subprocess.PIPE, text=True)
    port = free_port()
    forward = subprocess.Popen([CRICTL, "-r", f"unix://{moord.socket}", "port-forward",
                                pod_id, f"{port}:80"], stdout=subprocess.DEVNULL)
    try:
        body = b""
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello\n"
    finally:
        forward.terminate()
        forward.wait(timeout=10)
    stats = json.loads(_crictl(moord, "stats", "-o", "json", container_id))["stats"]
    assert stats[0]["cpu"]["usageCoreNanoSeconds"]["value"]

    _crictl(moord, "stop", container_id)
    assert following.communicate(timeout=20)[0] == "one\ntwo\n"  # -f ends with the container
    _crictl(moord, "stopp", pod_id)
    _crictl(moord, "rmp", pod_id)
    assert pod_id[:13] not in _crictl(moord, "pods")
    _crictl(moord, "rmi", pulled)
    assert f"{registry.host}/pulled" not in _crictl(moord, "images")
