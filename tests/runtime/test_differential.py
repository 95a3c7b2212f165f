"""Differential tests: one bundle, several runtimes, the same view from inside.

Each scenario tweaks runc's default spec, runs a probe script (rt_probe.PROBE_SH)
in the container under moor-runtime and under a reference runtime, and compares
what the probe saw field by field. runc is the reference; crun joins wherever it
accepts this machine (its 1.8 refuses hybrid cgroup hierarchies outright).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rt_probe import PROBE_SH, diff, parse
from runtimekit import BundleFactory, Runtime, available, new_id

from moorage.devkit import busybox

CRUN_HYBRID = "cgroups in hybrid mode not supported"


@dataclass
class Host:
    """Host-side material a scenario may point its config at."""

    tmp: Path
    netns: Path | None = None
    cgroups_path: str = ""
    known_ns: dict[str, str] = field(default_factory=dict)


Configure = Callable[[dict[str, Any], Host], None]


def _default(cfg: dict[str, Any], host: Host) -> None:
    pass


def _user(cfg: dict[str, Any], host: Host) -> None:
    cfg["process"]["user"] = {
        "uid": 1000,
        "gid": 1000,
        "additionalGids": [5, 65534],
        "umask": 0o027,
    }
    cfg["process"]["cwd"] = "/home/app"
    cfg["process"]["env"].append("PROBE_EXTRA=with spaces=and equals")


def _capabilities(cfg: dict[str, Any], host: Host) -> None:
    base = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["capabilities"] = {
        "bounding": [*base, "CAP_SYS_ADMIN", "CAP_NET_RAW"],
        "permitted": base,
        "effective": base,
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
    }


def _root_capabilities(cfg: dict[str, Any], host: Host) -> None:
    cfg["process"]["capabilities"] = {
        "bounding": ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_DAC_OVERRIDE"],
        "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE"],
        "effective": ["CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN"],
        "ambient": [],
    }


def _rlimits(cfg: dict[str, Any], host: Host) -> None:
    cfg["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 1048576, "hard": 2097152},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608},
        {"type": "RLIMIT_MEMLOCK", "soft": 65536, "hard": 65536},
    ]
    cfg["process"]["oomScoreAdj"] = 500


def _no_nnp(cfg: dict[str, Any], host: Host) -> None:
    cfg["process"]["noNewPrivileges"] = False


def _writable_root(cfg: dict[str, Any], host: Host) -> None:
    cfg["root"]["readonly"] = False


def _extra_mounts(cfg: dict[str, Any], host: Host) -> None:
    cfg["mounts"] += [
        {
            "destination": "/mnt/tmpfs",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "relatime", "size=1m", "mode=1770"],
        },
        {
            "destination": "/mnt/file",
            "type": "bind",
            "source": str(host.tmp / "file"),
            "options": ["bind", "ro"],
        },
        {
            "destination": "/mnt/dir",
            "type": "bind",
            "source": str(host.tmp / "dir"),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {
            "destination": "/mnt/rbind",
            "type": "bind",
            "source": str(host.tmp / "rbind"),
            "options": ["rbind", "rw"],
        },
        {
            "destination": "/mnt/mq",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "nodev", "noexec", "relatime"],
        },
    ]


def _hostname(cfg: dict[str, Any], host: Host) -> None:
    cfg["hostname"] = "probe-host"
    cfg["domainname"] = "probe.example"


def _sysctl(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["sysctl"] = {
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "123456789",
        "net.core.somaxconn": "1000",
    }


def _userns(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _cgroup_resources(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["cgroupsPath"] = host.cgroups_path
    cfg["linux"]["resources"].update(
        {
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
            "pids": {"limit": 64},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        }
    )


def _cgroupns(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["cgroupsPath"] = host.cgroups_path
    cfg["linux"]["namespaces"].append({"type": "cgroup"})


def _seccomp(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }


def _join_netns(cfg: dict[str, Any], host: Host) -> None:
    assert host.netns
    for ns in cfg["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = str(host.netns)


def _rootfs_propagation(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["rootfsPropagation"] = "slave"
    cfg["mounts"].append(
        {
            "destination": "/mnt/dir",
            "type": "bind",
            "source": str(host.tmp / "dir"),
            "options": ["rbind", "rshared"],
        }
    )


def _fifo_device(cfg: dict[str, Any], host: Host) -> None:
    cfg["linux"]["devices"] = [
        {"path": "/dev/probe-fifo", "type": "p", "fileMode": 0o640, "uid": 0, "gid": 5},
        {"path": "/dev/sub/probe-fifo", "type": "p"},
    ]


def _caller_mount_namespace(cfg: dict[str, Any], host: Host) -> None:
    """No mount namespace: the container shares the caller's (a throwaway one here).

    runc refuses masked and read-only paths then, and ignores root.readonly
    where moor-runtime honours it; the scenario keeps to what both do alike.
    """
    linux = cfg["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "mount"]
    linux.pop("maskedPaths", None)
    linux.pop("readonlyPaths", None)
    cfg["root"]["readonly"] = False


# Scenarios whose runtime runs in a mount namespace of its own making, so what
# the container mounts in the caller's namespace cannot reach the host's.
IN_THROWAWAY_MOUNT_NS = {"caller-mount-namespace"}
THROWAWAY_MOUNT_NS = ["unshare", "--mount", "--propagation", "private"]

# Where the reference falls short of the spec, the expected value is the spec's:
# runc 1.1.5 predates runtime-spec 1.1's `domainname` and silently ignores it.
PEER_GAPS: dict[tuple[str, str], dict[str, Callable[[Any], Any]]] = {
    ("hostname", "runc"): {"domainname": lambda _: "probe.example"},
    # runc's init mounts while its gid is still unmapped in the new user
    # namespace, so the mqueue root it makes belongs to the overflow gid 65534;
    # moor-runtime becomes the namespace's root group first, as the config's
    # owner would expect.
    ("userns", "runc"): {"dev": lambda lines: [
        line.replace("/dev/mqueue directory 1777 0 65534", "/dev/mqueue directory 1777 0 0")
        for line in lines]},
}

SCENARIOS: dict[str, Configure] = {
    "default": _default,
    "user": _user,
    "capabilities": _capabilities,
    "root-capabilities": _root_capabilities,
    "rlimits": _rlimits,
    "no-new-privileges-off": _no_nnp,
    "writable-root": _writable_root,
    "extra-mounts": _extra_mounts,
    "hostname": _hostname,
    "sysctl": _sysctl,
    "userns": _userns,
    "cgroup-resources": _cgroup_resources,
    "cgroupns": _cgroupns,
    "seccomp": _seccomp,
    "join-netns": _join_netns,
    "rootfs-propagation": _rootfs_propagation,
    "fifo-device": _fifo_device,
    "caller-mount-namespace": _caller_mount_namespace,
}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """Bind sources, a submount for rbind and a netns, all removed afterwards.

    The netns is bound onto a file of the test's own: `ip netns add` would make
    /run/netns a mount point that outlives the run (iproute2 keeps it by design),
    host state a fresh machine does not have."""
    h = Host(tmp=tmp_path / "host")
    h.tmp.mkdir()
    (h.tmp / "file").write_text("bound file\n")
    (h.tmp / "dir").mkdir()
    (h.tmp / "dir" / "a").write_text("a")
    (h.tmp / "dir" / "b").write_text("b")
    sub = h.tmp / "rbind" / "sub"
    sub.mkdir(parents=True)
    # A submount makes rbind observable: a plain bind would not carry it along.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=701", "probe-sub", str(sub)],
                   check=True)
    h.netns = tmp_path / "netns"
    h.netns.touch()
    subprocess.run(["unshare", f"--net={h.netns}", "true"], check=True)
    h.known_ns[f"net:[{h.netns.stat().st_ino}]"] = "joined-netns"
    try:
        yield h
    finally:
        subprocess.run(["umount", str(h.netns)], check=False)
        subprocess.run(["umount", str(sub)], check=False)


@pytest.fixture(scope="module")
def open_tmp() -> Iterator[Path]:
    """A world-traversable bundle parent: pytest's tmp dirs are 0700, which a container
    root mapped to host uid 100000 cannot enter."""
    d = Path(tempfile.mkdtemp(prefix="moor-test-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def observe(
    rt: Runtime, scenario: Configure, host: Host, rootfs: str, parent: Path
) -> dict[str, Any]:
    """Run the probe under ``rt``; return the normalised view plus exit status."""
    cid = new_id()
    host.cgroups_path = f"/moor-test-{secrets.token_hex(6)}"
    cfg = busybox.default_config(["/bin/sh", "/probe.sh"])
    scenario(cfg, host)
    path = busybox.make_bundle(str(parent / f"{cid}-{rt.name}"), cfg, rootfs)
    probe = Path(path) / "rootfs" / "probe.sh"
    probe.write_text(PROBE_SH)
    probe.chmod(0o755)
    r = rt("run", "--bundle", path, cid)
    if rt.name == "crun" and CRUN_HYBRID in r.err:
        pytest.skip(f"crun: cannot run here: {r.err.strip()}")
    view = parse(
        r.out,
        replace={cid: "<id>", host.cgroups_path: "<cgroupsPath>", path: "<bundle>"},
        known_ns=host.known_ns,
    )
    view["_rc"] = r.rc
    if r.rc != 0:
        view["_stderr"] = r.err.strip()
    return view


@pytest.mark.parametrize("peer", ["runc", "crun"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_view(
    scenario: str,
    peer: str,
    make_runtime: Callable[[str], Runtime],
    host: Host,
    busybox_rootfs: str,
    open_tmp: Path,
) -> None:
    if not available(peer):
        pytest.skip(f"{peer} not installed")
    conf = SCENARIOS[scenario]
    reference = make_runtime(peer)
    if scenario in IN_THROWAWAY_MOUNT_NS:
        reference.wrapper = THROWAWAY_MOUNT_NS
    expected = observe(reference, conf, host, busybox_rootfs, open_tmp)
    assert expected["_rc"] == 0, f"{peer} failed the scenario itself: {expected}"
    for name, known_gap in PEER_GAPS.get((scenario, peer), {}).items():
        expected[name] = known_gap(expected.get(name))
    moor = make_runtime("moor-runtime")
    if scenario in IN_THROWAWAY_MOUNT_NS:
        moor.wrapper = THROWAWAY_MOUNT_NS
    got = observe(moor, conf, host, busybox_rootfs, open_tmp)
    # A failed run makes every field "<missing>"; the error alone says more.
    assert got["_rc"] == 0, f"moor-runtime failed: {got.get('_stderr')}"
    assert got == expected, f"moor-runtime vs {peer}:\n" + diff(
        got, expected, "moor-runtime", peer
    )


# A signal to the pid namespace's init from inside is dropped unless init handles it,
# so `kill -9 $$` only kills the shell when it is not pid 1.
@pytest.mark.parametrize("peer", ["runc", "crun"])
@pytest.mark.parametrize(
    ("script", "pidns", "status"),
    [
        ("exit 42", True, 42),
        ("exit 0", True, 0),
        ("kill -9 $$", True, 0),
        ("kill -9 $$", False, 137),
        ("kill -15 $$", False, 143),
    ],
)
def test_exit_status(
    script: str,
    pidns: bool,
    status: int,
    peer: str,
    make_runtime: Callable[[str], Runtime],
    bundle: BundleFactory,
) -> None:
    if not available(peer):
        pytest.skip(f"{peer} not installed")
    results: dict[str, int] = {}
    for name in (peer, "moor-runtime"):
        rt = make_runtime(name)
        cfg = busybox.default_config(["/bin/sh", "-c", script])
        if not pidns:
            cfg["linux"]["namespaces"].remove({"type": "pid"})
        path = bundle(cfg, name=f"bundle-{name}")
        r = rt("run", "--bundle", path, new_id())
        if name == "crun" and CRUN_HYBRID in r.err:
            pytest.skip(f"crun: cannot run here: {r.err.strip()}")
        results[name] = r.rc
    assert results == {peer: status, "moor-runtime": status}
