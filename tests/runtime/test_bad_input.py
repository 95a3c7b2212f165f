"""Bad input: every refusal is one line on stderr, exit status 1, and leaves nothing.

"Nothing" is checked on the host: no state entry under --root, no new mount, no
new cgroup directory, no process left in a foreign mount namespace.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runtimekit import (
    BundleFactory,
    Runtime,
    cgroup_dirs,
    is_leaked_process,
    mount_table,
    new_id,
    processes,
)

from moorage.devkit import busybox

Mutate = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    mutate: Mutate | None = None
    raw: str | None = None  # replaces config.json verbatim
    remove_rootfs: bool = False
    keywords: tuple[str, ...] = ()


def _pop(path: tuple[str, ...]) -> Mutate:
    def mutate(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _set(path: tuple[str, ...], value: Any) -> Mutate:
    def mutate(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _bogus_ns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "bogus"})


# runc 1.1.5, for comparison (`runc run` error text after "runc run failed: "):
#   invalid JSON          → "unexpected EOF"
#   no process.args       → "args must not be empty"
#   no ociVersion         → accepted, runs
#   args is a string      → "json: cannot unmarshal string into Go struct field
#                            Process.process.args of type []string"
#   no rootfs             → "invalid rootfs: stat <bundle>/rootfs: no such file or directory"
#   namespace type bogus  → 'namespace {"bogus" ""} does not exist'
CASES: dict[str, Case] = {
    "invalid-json": Case(raw='{"ociVersion": "1.0.2", "process": ', keywords=("json",)),
    "not-an-object": Case(raw="[1, 2, 3]", keywords=("object", "config")),
    "args-missing": Case(mutate=_pop(("process", "args")), keywords=("args",)),
    "args-empty": Case(mutate=_set(("process", "args"), []), keywords=("args",)),
    "ociversion-missing": Case(mutate=_pop(("ociVersion",)), keywords=("ociversion",)),
    "args-wrong-type": Case(mutate=_set(("process", "args"), "true"), keywords=("args",)),
    "uid-wrong-type": Case(mutate=_set(("process", "user", "uid"), "zero"), keywords=("uid",)),
    "root-missing": Case(mutate=_pop(("root",)), keywords=("root",)),
    "rootfs-missing": Case(remove_rootfs=True, keywords=("rootfs",)),
    "unknown-namespace": Case(mutate=_bogus_ns, keywords=("bogus",)),
    "mount-no-destination": Case(
        mutate=lambda c: c["mounts"].append({"type": "tmpfs", "source": "tmpfs"}),
        keywords=("destination",),
    ),
}


def _mentions(pid: int, tokens: tuple[str, ...]) -> bool:
    for name in ("cmdline", "cgroup", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                data = f.read().decode(errors="replace")
        except OSError:
            continue
        if any(t in data for t in tokens):
            return True
    return False


Leftovers = Callable[[str, str], list[str]]


@pytest.fixture
def host_snapshot() -> Iterator[Leftovers]:
    """Returns ``leftovers(cid, bundle)``: what appeared on the host since the fixture ran.

    Only things naming the container id or its bundle count: other suites may be
    creating containers on this machine at the same time.
    """
    mounts, cgroups, procs = mount_table(), cgroup_dirs(), processes()
    me = os.getpid()

    def leftovers(cid: str, bundle: str) -> list[str]:
        tokens = (cid, bundle)
        found = [
            f"mount: {m}"
            for m in sorted(mount_table() - mounts)
            if any(t in f for f in m for t in tokens)
        ]
        found += [f"cgroup: {c}" for c in sorted(cgroup_dirs() - cgroups) if cid in c]
        found += [
            f"process: {pid} {cmd}"
            for pid, cmd in processes().items()
            if pid not in procs and is_leaked_process(pid, me) and _mentions(pid, tokens)
        ]
        return found

    yield leftovers


def assert_refused(r: Any, keywords: tuple[str, ...]) -> None:
    assert r.rc == 1, f"rc={r.rc} stderr={r.err!r}"
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"want one line on stderr, got {r.err!r}"
    assert any(k.lower() in lines[0].lower() for k in keywords), (keywords, lines[0])


def assert_nothing_left(rt: Runtime, cid: str, bundle: str, leftovers: Leftovers) -> None:
    entries = os.listdir(rt.root) if os.path.isdir(rt.root) else []
    assert cid not in entries, f"state left under {rt.root}: {entries}"
    # Cgroup removal may lag a moment behind the runtime's exit.
    for _ in range(10):
        if not leftovers(cid, bundle):
            break
        time.sleep(0.05)
    assert leftovers(cid, bundle) == []


@pytest.mark.parametrize("command", ["create", "run"])
@pytest.mark.parametrize("case", list(CASES))
def test_refused(
    case: str,
    command: str,
    moor: Runtime,
    bundle: BundleFactory,
    host_snapshot: Leftovers,
) -> None:
    c = CASES[case]
    cfg = busybox.default_config(["true"])
    if c.mutate:
        c.mutate(cfg)
    path = bundle(cfg)
    if c.raw is not None:
        Path(path, "config.json").write_text(c.raw)
    if c.remove_rootfs:
        shutil.rmtree(Path(path, "rootfs"))
    cid = new_id()
    r = moor(command, "--bundle", path, cid)
    assert_refused(r, c.keywords)
    assert_nothing_left(moor, cid, path, host_snapshot)


def test_id_in_use(runtime: Runtime, bundle: BundleFactory,
                   host_snapshot: Leftovers) -> None:
    cid = new_id()
    path = bundle(args=["sleep", "100"])
    assert runtime("create", "--bundle", path, cid).rc == 0
    first = runtime.state(cid)
    ours = {c for c in cgroup_dirs() if cid in c}
    second = bundle(args=["true"])
    r = runtime("create", "--bundle", second, cid)
    # runc: 'container with id exists: <id>'
    assert_refused(r, ("exists", "in use", "already"))
    assert runtime.state(cid) == first
    # Only what names this id or the refused bundle counts: other suites may be
    # mounting and creating cgroups on this host at the same time.
    assert {c for c in cgroup_dirs() if cid in c} == ours
    assert not [m for m in host_snapshot(cid, second) if m.startswith("mount:")]


@pytest.fixture
def escape_target() -> Iterator[Path]:
    """A host dir a malicious rootfs symlink points at; must stay untouched."""
    d = Path("/tmp") / new_id()
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _escape_bundle(bundle: BundleFactory, target: Path) -> str:
    cfg = busybox.default_config(["true"])
    cfg["mounts"].append(
        {"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    )
    path = bundle(cfg)
    # Enough ../ to climb out of any bundle path: the kernel stops at /.
    os.symlink("../" * 32 + str(target).lstrip("/"), Path(path, "rootfs", "escape"))
    return path


def test_mount_destination_symlink_escape(
    moor: Runtime,
    bundle: BundleFactory,
    escape_target: Path,
    host_snapshot: Leftovers,
) -> None:
    path = _escape_bundle(bundle, escape_target)
    cid = new_id()
    r = moor("run", "--bundle", path, cid)
    assert_refused(r, ("symlink", "escape", "outside", "/escape"))
    assert list(escape_target.iterdir()) == []
    assert_nothing_left(moor, cid, path, host_snapshot)


def test_runc_scopes_symlink_escape(
    make_runtime: Callable[[str], Runtime],
    bundle: BundleFactory,
    escape_target: Path,
) -> None:
    """Reference: runc resolves the symlink inside the rootfs (securejoin) and runs.

    It mounts on <rootfs>/tmp/<target>/x instead of the host path; the host dir
    must stay empty either way.
    """
    runc = make_runtime("runc")
    path = _escape_bundle(bundle, escape_target)
    r = runc("run", "--bundle", path, new_id())
    assert r.rc == 0, r.err
    assert list(escape_target.iterdir()) == []
    assert Path(path, "rootfs", str(escape_target).lstrip("/"), "x").is_dir()
