"""Driving a CRI runtime over gRPC: moord with --cri-socket (and, as the reference,
a private containerd with its CRI plugin), a CNI configuration of the test's own
(unique bridge and subnet), and cleaning up what the CNI plugins leave on the host:
the bridge, and the iptables chains portmap makes once per host."""

from __future__ import annotations

import glob
import hashlib
import io
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import grpc
from enginekit import Daemon, start_daemon, stop_daemon
from peers import stop_process
from runstate import claim

from moorage.cri import spdy
from moorage.cri.proto import api_pb2 as pb
from moorage.cri.proto import api_pb2_grpc as rpc

PAUSE_IMAGE = "moorage.test/pause:1"
# The pods' cgroup parents, as kubelet's /kubepods/...: made by the runtime under test,
# removed by the tests (kubelet's job).
POD_CGROUPS = f"moorage-cri-test-{os.getpid()}"
BUSYBOX_IMAGE = "moorage.test/busybox:1"
CNI_BIN = "/usr/lib/cni"


@dataclass
class Network:
    conf_dir: str
    bridge: str
    subnet: ipaddress.IPv4Network
    ipam_dir: str
    nat_tables_before: set[str]

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)


@dataclass
class Cri:
    name: str                      # "moord" or "containerd"
    daemon: Daemon | None          # moord's; None for containerd
    socket: str
    channel: grpc.Channel
    runtime: rpc.RuntimeServiceStub
    images: rpc.ImageServiceStub
    process: subprocess.Popen | None = None  # containerd's
    # containerd makes /run/netns for its pods' namespaces and leaves it behind: a later
    # run must find the host as a new machine has it
    made_run_netns: bool = False

    def close(self) -> None:
        self.channel.close()


def image_archive(layer: bytes, tags: dict[str, list[str]]) -> bytes:
    """A docker-archive (what `docker save` writes) of one-layer images: tag → Cmd. Both
    runtimes load the same bytes, so their image ids are the same."""
    layer_hex = hashlib.sha256(layer).hexdigest()
    members: dict[str, bytes] = {f"{layer_hex}/layer.tar": layer}
    manifest = []
    for tag, cmd in tags.items():
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                           "/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]}}).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        members[config_name] = config
        manifest.append({"Config": config_name, "RepoTags": [tag],
                         "Layers": [f"{layer_hex}/layer.tar"]})
    members["manifest.json"] = json.dumps(manifest).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def make_network(base: str) -> Network:
    """A bridge + host-local + portmap configuration list in `base`/cni, on a /24 no
    route of the host uses."""
    digest = hashlib.sha256(os.path.realpath(base).encode()).digest()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used = [ipaddress.ip_network(line.split()[0], strict=False) for line in routes.splitlines()
            if line and line.split()[0][0].isdigit()]
    for step in range(200):
        subnet = ipaddress.ip_network(f"10.{200 + (digest[0] + step) % 50}."
                                      f"{(digest[1] + step) % 256}.0/24")
        if not any(subnet.overlaps(u) for u in used):
            break
    bridge = claim("cri" + digest.hex()[:10])
    conf_dir = os.path.join(base, "cni")
    ipam_dir = os.path.join(base, "ipam")
    os.makedirs(conf_dir, exist_ok=True)
    with open(os.path.join(conf_dir, "10-test.conflist"), "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": "moorage-test", "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": ipam_dir,
                      "ranges": [[{"subnet": str(subnet)}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)
    return Network(conf_dir, bridge, subnet, ipam_dir, _nat_tables())


def _nat_tables() -> set[str]:
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in tables.splitlines() if line.strip().endswith(" nat")}


_PORTMAP_JUMPS = (
    ("PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("POSTROUTING", ["-m", "comment", "--comment", "CNI portfwd requiring masquerade",
                     "-j", "CNI-HOSTPORT-MASQ"]))


def remove_pod_cgroups() -> None:
    """The pod cgroups the runtimes made under POD_CGROUPS, deepest first."""
    for root in [*glob.glob("/sys/fs/cgroup/*/"), "/sys/fs/cgroup/"]:
        top = os.path.join(root, POD_CGROUPS)
        for directory, _, _ in sorted(os.walk(top), key=lambda e: -e[0].count("/")):
            try:
                os.rmdir(directory)
            except OSError:
                pass


def clean_network(network: Network) -> None:
    """The bridge (CNI's bridge plugin never removes it), then portmap's shared chains
    and nat tables when this test made them and no pod uses them any more."""
    subprocess.run(["ip", "link", "del", network.bridge], capture_output=True)
    made = {"table ip nat", "table ip6 nat"} - network.nat_tables_before
    if not made:
        return
    for tool in ("iptables", "ip6tables"):
        rules = subprocess.run([tool, "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"],
                               capture_output=True, text=True).stdout
        if "-j CNI-DN-" in rules:
            continue  # another pod's mapping: not ours to remove
        for chain, rule in _PORTMAP_JUMPS:
            subprocess.run([tool, "-t", "nat", "-D", chain, *rule], capture_output=True)
        for chain in ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"):
            subprocess.run([tool, "-t", "nat", "-F", chain], capture_output=True)
            subprocess.run([tool, "-t", "nat", "-X", chain], capture_output=True)
    for table in made & _nat_tables():
        family = table.split()[1]
        listing = subprocess.run(["nft", "list", "table", family, "nat"],
                                 capture_output=True, text=True).stdout
        if "jump" not in listing and " rule" not in listing and "dnat" not in listing:
            subprocess.run(["nft", "delete", "table", family, "nat"], capture_output=True)


def start_cri(base: str, network: Network, *extra: str) -> Cri:
    socket = os.path.join(base, "cri.sock")
    daemon = start_daemon(base, "--cri-socket", f"unix://{socket}", "--cni-conf-dir",
                          network.conf_dir, "--cni-bin-dir", CNI_BIN,
                          "--cri-sandbox-image", PAUSE_IMAGE, *extra)
    deadline = time.monotonic() + 20
    while not os.path.exists(socket):
        if time.monotonic() > deadline:
            stop_daemon(daemon)
            raise RuntimeError("no CRI socket:\n" + daemon.log())
        time.sleep(0.02)
    return _connect("moord", daemon, socket)


def _connect(name: str, daemon: Daemon | None, socket: str,
             process: subprocess.Popen | None = None) -> Cri:
    channel = grpc.insecure_channel(f"unix://{socket}")
    return Cri(name, daemon, socket, channel, rpc.RuntimeServiceStub(channel),
               rpc.ImageServiceStub(channel), process)


def load_images(cri: Cri, busybox_tar: bytes, base: str) -> None:
    """The pause image (busybox sleeping) and busybox, loaded from an archive into the
    CRI's images: moord's through the Engine API (its load's `namespace`), containerd's
    with ctr into its k8s.io namespace. No registry is reached."""
    archive = image_archive(busybox_tar, {PAUSE_IMAGE: ["sleep", "86400"],
                                          BUSYBOX_IMAGE: ["sh"]})
    if cri.daemon is not None:
        engine_load(cri.daemon, archive, "k8s.io")
        return
    path = os.path.join(base, "images.tar")
    with open(path, "wb") as f:
        f.write(archive)
    subprocess.run(["ctr", "-a", os.path.join(base, "containerd.sock"), "-n", "k8s.io",
                    "images", "import", path], check=True, capture_output=True)


def engine_load(daemon: Daemon, archive: bytes, namespace: str = "") -> None:
    """POST /images/load, into the image namespace given (moorage's own parameter)."""
    api = docker.APIClient(base_url=daemon.host)
    try:
        params = {"quiet": "1", **({"namespace": namespace} if namespace else {})}
        response = api._post(api._url("/images/load"), params=params, data=archive)
        api._raise_for_status(response)
    finally:
        api.close()


_CONTAINERD_CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{base}/runc"
"""
_CONTAINERD_MIRROR = """  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["{mirror}"]
"""


def containerd_config(base: str, cni_conf: str, mirror: str = "") -> str:
    """containerd's configuration: everything under `base` (socket `base`/containerd.sock),
    registry.k8s.io and gcr.io pulled through `mirror` when given (scripts/critest.sh)."""
    text = _CONTAINERD_CONFIG.format(base=base, pause=PAUSE_IMAGE, cni_bin=CNI_BIN,
                                     cni_conf=cni_conf)
    for registry in ("registry.k8s.io", "gcr.io") if mirror else ():
        text += _CONTAINERD_MIRROR.format(registry=registry, mirror=mirror)
    return text


def containerd_available() -> bool:
    return bool(shutil.which("containerd")) and bool(shutil.which("ctr"))


RUN_NETNS = "/run/netns"


def start_containerd(base: str, network: Network) -> Cri:
    """Debian's containerd 1.6 with its CRI plugin on a private socket, root and state."""
    config = os.path.join(base, "containerd.toml")
    with open(config, "w") as f:
        f.write(containerd_config(base, network.conf_dir))
    socket = os.path.join(base, "containerd.sock")
    with open(os.path.join(base, "containerd.log"), "wb") as log:
        process = subprocess.Popen(["containerd", "--config", config], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    had_run_netns = os.path.isdir(RUN_NETNS)
    deadline = time.monotonic() + 30
    cri = None
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(socket):
            cri = _connect("containerd", None, socket, process)
            try:
                cri.runtime.Version(pb.VersionRequest(), timeout=2)
                cri.made_run_netns = not had_run_netns
                return cri
            except grpc.RpcError:
                cri.close()
        time.sleep(0.1)
    stop_process(process)
    with open(os.path.join(base, "containerd.log")) as log_file:
        raise RuntimeError("containerd did not start:\n" + log_file.read()[-3000:])


def stop_cri(cri: Cri) -> None:
    cri.close()
    if cri.daemon is not None:
        stop_daemon(cri.daemon)
    elif cri.process is not None:
        stop_process(cri.process)
        if cri.made_run_netns:
            try:
                os.rmdir(RUN_NETNS)
            except OSError:
                pass  # a namespace is still bound there: someone else's, left alone


@contextmanager
def running(name: str, network: Network, busybox_tar: bytes) -> Iterator[Cri]:
    """moord or containerd on a temporary folder, with the pause and busybox images; its
    pods removed and it stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=f"cri-{name}-") as base:
        found = start_cri(base, network) if name == "moord" \
            else start_containerd(base, network)
        try:
            load_images(found, busybox_tar, base)
            yield found
        finally:
            try:
                remove_all_pods(found)
            finally:
                stop_cri(found)


def pod_config(name: str, log_dir: str, *, uid: str = "", host_network: bool = False,
               ports: tuple[tuple[int, int], ...] = (), privileged: bool = False,
               **fields: object) -> pb.PodSandboxConfig:
    options = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="test", uid=uid or name + "-uid"),
        # kubelet names only pods with a network of their own (a host-network pod has
        # the node's).
        hostname="" if host_network else name, log_directory=log_dir,
        port_mappings=[pb.PortMapping(container_port=c, host_port=h) for c, h in ports],
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/{POD_CGROUPS}/{name}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=options,
                                                            privileged=privileged)),
        **fields)


def container_config(name: str, command: list[str], **fields: object) -> pb.ContainerConfig:
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name),
                              image=pb.ImageSpec(image=BUSYBOX_IMAGE), command=command,
                              log_path=f"{name}/0.log", **fields)


def run_container(cri: Cri, pod_id: str, pod: pb.PodSandboxConfig,
                  config: pb.ContainerConfig) -> str:
    container_id = cri.runtime.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=pod)).container_id
    cri.runtime.StartContainer(pb.StartContainerRequest(container_id=container_id))
    return container_id


def exec_sync(cri: Cri, container_id: str, *cmd: str, timeout: int = 10
              ) -> pb.ExecSyncResponse:
    return cri.runtime.ExecSync(pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd),
                                                   timeout=timeout))


def _spdy_upgrade(url: str, protocol: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    conn = socket.create_connection((parts.hostname, parts.port), timeout=10)
    conn.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                 "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n"
                 "\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return conn


def _syn_stream(deflate: Any, stream_id: int, headers: dict[str, str]) -> bytes:
    raw = struct.pack(">I", len(headers)) + b"".join(
        struct.pack(">I", len(text)) + text
        for pair in headers.items() for text in (pair[0].encode(), pair[1].encode()))
    block = deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIH", stream_id, 0, 0) + block
    return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload


def _deflate() -> Any:
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                            zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)


def spdy_exec(url: str, stdin: bytes | None = None) -> dict[str, bytes]:
    """A kubelet-style client of an Exec URL (SPDY/3.1, v4.channel.k8s.io, as client-go
    speaks it): what came on each channel, until the error channel or the connection
    ended (containerd closes the connection)."""
    conn = _spdy_upgrade(url, "v4.channel.k8s.io")
    deflate = _deflate()
    names = ["error", "stdout", "stderr"] + (["stdin"] if stdin is not None else [])
    ids = {name: 1 + 2 * number for number, name in enumerate(names)}
    for name, stream_id in ids.items():
        conn.sendall(_syn_stream(deflate, stream_id, {"streamtype": name}))
    if stdin is not None:
        conn.sendall(spdy.Codec.data(ids["stdin"], stdin, fin=True))
    codec = spdy.Codec()
    got = {name: b"" for name in names}
    by_id = {stream_id: name for name, stream_id in ids.items()}
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            conn.close()
            return got
        for frame in codec.feed(chunk):
            if frame.control:
                continue
            got[by_id[frame.stream_id]] += frame.data
            if by_id[frame.stream_id] == "error" and frame.flags & spdy.FLAG_FIN:
                conn.close()
                return got


def spdy_port_forward(url: str, requests: list[tuple[int, bytes]]
                      ) -> list[tuple[bytes, bytes]]:
    """A kubectl-style client of a PortForward URL (SPDY/3.1, portforward.k8s.io): one
    connection, per (port, bytes sent) an error and a data stream with a requestID, all
    opened at once; what came back on each pair's data and error streams, until both
    ended."""
    conn = _spdy_upgrade(url, "portforward.k8s.io")
    deflate = _deflate()
    streams: dict[int, tuple[int, str]] = {}
    for number, (port, sent) in enumerate(requests):
        for offset, kind in ((1, "error"), (3, "data")):
            stream_id = 4 * number + offset
            streams[stream_id] = (number, kind)
            conn.sendall(_syn_stream(deflate, stream_id, {
                "streamtype": kind, "port": str(port), "requestid": str(number)}))
        conn.sendall(spdy.Codec.data(4 * number + 3, sent))
    codec = spdy.Codec()
    got = [{"data": b"", "error": b""} for _ in requests]
    open_streams = set(streams)
    while open_streams:
        chunk = conn.recv(65536)
        if not chunk:
            break
        for frame in codec.feed(chunk):
            if frame.control:
                if frame.kind == spdy.RST_STREAM:
                    open_streams.discard(frame.stream_id)
                continue
            number, kind = streams[frame.stream_id]
            got[number][kind] += frame.data
            if frame.flags & spdy.FLAG_FIN:
                open_streams.discard(frame.stream_id)
    conn.close()
    return [(pair["data"], pair["error"]) for pair in got]


def wait_exited(cri: Cri, container_id: str, seconds: float = 10) -> pb.ContainerStatus:
    deadline = time.monotonic() + seconds
    while True:
        status = cri.runtime.ContainerStatus(pb.ContainerStatusRequest(
            container_id=container_id)).status
        if status.state == pb.CONTAINER_EXITED or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def remove_all_pods(cri: Cri) -> None:
    for pod in cri.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        cri.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        cri.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
