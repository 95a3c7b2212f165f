"""`docker run --privileged` on moord and on a real dockerd: the host's devices, all
capabilities, no seccomp, writable /sys and /proc/sys, no masked or read-only paths, and
what --device and --security-opt add to it.

dockerd 20.10 gives a privileged container every capability the kernel knows, and runc
then fails where the daemon's bounding set lacks some (CAP_SYS_RESOURCE on this kind of
host): its runc here is a wrapper that drops from the bundle's config.json what the
bounding set lacks (and from an exec's process.json), as moord (and containerd, and later
dockerds) do, and nothing else.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from comparekit import Pair, daemon_pair
from enginekit import unique_name
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available() or not shutil.which("runc"),
                                reason="needs dockerd and runc")
IMAGE = "busybox:latest"

_BOUNDED_RUNC = '''#!{python}
import json, os, sys
args = sys.argv[1:]
path = ""
if "create" in args and "--bundle" in args:
    path = os.path.join(args[args.index("--bundle") + 1], "config.json")
elif "exec" in args and "--process" in args:
    path = args[args.index("--process") + 1]
if path:
    with open("/proc/self/status") as f:
        bounding = next(int(l.split()[1], 16) for l in f if l.startswith("CapBnd:"))
    names = {names!r}
    kept = {{name for number, name in enumerate(names) if bounding >> number & 1}}
    with open(path) as f:
        document = json.load(f)
    process = document.get("process", document)
    caps = process.get("capabilities") or {{}}
    for kind, listed in caps.items():
        caps[kind] = [name for name in listed if name in kept]
    with open(path, "w") as f:
        json.dump(document, f)
os.execv({runc!r}, [{runc!r}, *args])
'''


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    from moorage.runtime.capabilities import NAMES

    with tempfile.TemporaryDirectory(prefix="moor-bounded-runc-") as folder:
        wrapper = Path(folder) / "runc"
        wrapper.write_text(_BOUNDED_RUNC.format(python=sys.executable, names=list(NAMES),
                                                runc=shutil.which("runc")))
        wrapper.chmod(0o755)
        config = {"runtimes": {"bounded-runc": {"path": str(wrapper)}},
                  "default-runtime": "bounded-runc"}
        with daemon_pair("moor-privileged-", IMAGE, busybox_tar,
                         dockerd_config=config) as pair:
            yield pair


# A node's name, type and mode, owner, and numbers (or size), without its time.
_LIST_DEV = "ls -lnR /dev | awk '{print $1, $3, $4, $5, $6, $NF}'"


def test_host_devices_and_writable_kernel_files(pair: Pair, names: list[str]) -> None:
    pair.same("run", "--rm", "--privileged", IMAGE, "sh", "-c", _LIST_DEV)
    pair.same("run", "--rm", "--privileged", IMAGE, "sh", "-c",
              "cat /sys/fs/cgroup/devices/devices.list; grep -E 'Seccomp|NoNewPrivs' "
              "/proc/self/status; mount | grep -v ' on / '; ls /sys/firmware; "
              "echo moor > /proc/sys/kernel/domainname && cat /proc/sys/kernel/domainname")
    # A mapping to another path is added (with every access, whatever it asks); one to
    # the same path is already there, and is not even looked for.
    pair.same("run", "--rm", "--privileged", "--device", "/dev/null:/dev/mynull:r",
              "--device", "/dev/zero", "--device", "/dev/nosuch", IMAGE, "sh", "-c",
              "ls -ln /dev/mynull /dev/zero | awk '{print $1, $3, $4, $5, $6, $NF}'; "
              "cat /sys/fs/cgroup/devices/devices.list")
    pair.same("run", "--rm", "--privileged", "--device", "/dev/nosuch:/dev/x", IMAGE, "true")
    # Not privileged: only the mapped node, and the cgroup allows only it beyond the defaults
    # and the rules asked for; privileged, those rules are moot.
    pair.same("run", "--rm", "--device", "/dev/null:/dev/mynull:r", IMAGE, "sh", "-c",
              _LIST_DEV + "; sort /sys/fs/cgroup/devices/devices.list")
    for flags in ((), ("--privileged",)):
        pair.same("run", "--rm", *flags, "--device-cgroup-rule", "c 10:232 rw",
                  "--device-cgroup-rule", "b *:* r", IMAGE, "sort",
                  "/sys/fs/cgroup/devices/devices.list")
    name = unique_name(names, "c")
    pair.same("create", "--name", name, "--device-cgroup-rule", "c 10:232 rw", IMAGE, "true",
              compare_stdout=False)
    ours, theirs = pair.inspect(name, ["HostConfig.DeviceCgroupRules", "HostConfig.Devices"])
    assert ours == theirs


def _same_status(pair: Pair, *args: str) -> None:
    """The same /proc/self/status fields (Cap*, NoNewPrivs, Seccomp) on both; the sets of
    capabilities equal but for those dockerd 20.10 does not know."""
    from moorage.runtime.capabilities import NAMES

    ours, theirs = pair.both(*args, "grep", "-E", "NoNewPrivs|Seccomp|Cap(Eff|Bnd|Prm)",
                             "/proc/self/status")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)

    def fields(out: bytes) -> dict[str, str | set[str]]:
        found: dict[str, str | set[str]] = {}
        for line in out.decode().splitlines():
            key, value = line.split(":")
            bits = int(value, 16)
            found[key] = ({name for n, name in enumerate(NAMES) if bits >> n & 1}
                          if key.startswith("Cap") else value.strip())
        return found

    mine, reference = fields(ours.stdout), fields(theirs.stdout)
    # dockerd 20.10's table stops at CAP_AUDIT_READ; later dockerds give these as well.
    newer = {"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}
    for key in ("CapEff", "CapBnd", "CapPrm"):
        assert reference[key] <= mine[key] and mine[key] - reference[key] <= newer  # type: ignore[operator]
        mine[key] = reference[key]
    assert mine == reference, args


def test_capabilities_and_security_options(pair: Pair, names: list[str]) -> None:
    """Every capability whatever --cap-drop says; no seccomp whatever the profile;
    no-new-privileges still applies. A privileged exec gets every capability, but the
    container's seccomp filter and devices; an exec in a privileged container, as it."""
    _same_status(pair, "run", "--rm", "--privileged", "--cap-drop", "ALL", "--security-opt",
                 "no-new-privileges", "--security-opt", "seccomp=unconfined", IMAGE)
    pair.same("run", "--rm", "--privileged", "--security-opt", "seccomp={}", IMAGE, "grep",
              "Seccomp:", "/proc/self/status")
    plain, privileged = unique_name(names, "c"), unique_name(names, "c")
    for name, flags in ((plain, ()), (privileged, ("--privileged",))):
        pair.same("run", "-d", "--name", name, *flags, IMAGE, "sleep", "60",
                  compare_stdout=False)
    _same_status(pair, "exec", "--privileged", plain)
    _same_status(pair, "exec", privileged)
    _same_status(pair, "exec", "-u", "1000", privileged)
    pair.same("exec", "--privileged", plain, "sh", "-c",
              "ls /dev | wc -l; sort /sys/fs/cgroup/devices/devices.list")
