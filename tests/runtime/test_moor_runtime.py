"""moor-runtime behaviours with no runc counterpart to compare against on this host.

cgroup v2 (forced on the hybrid host's unified tree, where runc would use v1),
--no-pivot, LSM options on a host without the LSM, and oomScoreAdj.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from runtimekit import BundleFactory, Runtime, new_id

from moorage.devkit import busybox

UNIFIED = Path("/sys/fs/cgroup/unified")


def _config(args: list[str], cgroup: str | None = None) -> dict:
    cfg = busybox.default_config(args)
    if cgroup:
        cfg["linux"]["cgroupsPath"] = cgroup
    return cfg


@pytest.mark.skipif(not (UNIFIED / "cgroup.controllers").exists(), reason="no cgroup2 tree")
def test_cgroup_v2_mode_runs_pauses_and_cleans_up(moor: Runtime, bundle: BundleFactory) -> None:
    moor.global_args = ["--cgroup-mode", "v2"]
    cid = new_id()
    cgroup = f"/{cid}"
    assert moor("create", "--bundle", bundle(_config(["sleep", "100"], cgroup)), cid).rc == 0
    assert moor("start", cid).rc == 0
    pid = moor.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"0::{cgroup}\n" in f.read()
    assert moor("pause", cid).rc == 0
    assert moor.state(cid)["status"] == "paused"
    assert (UNIFIED / cid / "cgroup.freeze").read_text().strip() == "1"
    assert moor("resume", cid).rc == 0
    assert moor.state(cid)["status"] == "running"
    assert moor("delete", "--force", cid).rc == 0
    assert not (UNIFIED / cid).exists()


@pytest.mark.skipif(not (UNIFIED / "cgroup.controllers").exists(), reason="no cgroup2 tree")
def test_cgroup_v2_missing_controller_is_one_clear_line(
    moor: Runtime, bundle: BundleFactory
) -> None:
    if "memory" in (UNIFIED / "cgroup.controllers").read_text().split():
        pytest.skip("memory controller available on the cgroup2 tree here")
    moor.global_args = ["--cgroup-mode", "v2"]
    cid = new_id()
    cfg = _config(["true"], f"/{cid}")
    cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    r = moor("run", "--bundle", bundle(cfg), cid)
    assert r.rc == 1
    assert r.err.count("\n") == 1 and "controller 'memory' is not available" in r.err
    assert not (UNIFIED / cid).exists()
    assert not (Path(moor.root) / cid).exists()


def test_no_pivot(moor: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    r = moor("run", "--no-pivot", "--bundle", bundle(_config(["sh", "-c", "ls /; exit 3"])), cid)
    assert r.rc == 3, r.err
    assert "bin" in r.out.split()


def test_apparmor_profile_ignored_with_a_warning(moor: Runtime, bundle: BundleFactory) -> None:
    if Path("/sys/module/apparmor/parameters/enabled").exists():
        pytest.skip("AppArmor is present on this host")
    cfg = _config(["true"])
    cfg["process"]["apparmorProfile"] = "docker-default"
    r = moor("run", "--bundle", bundle(cfg), new_id())
    assert r.rc == 0
    assert "AppArmor is not enabled" in r.err and "docker-default" in r.err


def test_oom_score_adj(moor: Runtime, bundle: BundleFactory) -> None:
    cfg = _config(["cat", "/proc/self/oom_score_adj"])
    cfg["process"]["oomScoreAdj"] = 500
    r = moor("run", "--bundle", bundle(cfg), new_id())
    assert (r.rc, r.out) == (0, "500\n"), r.err


def test_features_match_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    contracts = Path(__file__).resolve().parents[3] / "shared/contracts/oci-runtime-spec-v1.3.0"
    if not contracts.exists():
        pytest.skip("shared/contracts not beside the checkout")
    registry: Registry = Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text()),
                                           default_specification=DRAFT4))
        for path in contracts.glob("*.json"))
    schema = json.loads((contracts / "features-schema.json").read_text())
    binary = os.path.join(os.path.dirname(sys.executable), "moor-runtime")
    out = subprocess.run([binary, "features"], capture_output=True, text=True, check=True).stdout
    jsonschema.Draft4Validator(schema, registry=registry).validate(json.loads(out))


def test_caller_mount_namespace_exec_and_delete(moor: Runtime, bundle: BundleFactory) -> None:
    """Without a mount namespace the init chroots in the caller's; `exec` enters that
    root too (runc 1.1's exec stays in the host's root) and `delete` detaches what the
    init mounted there (runc leaves it). All inside a throwaway mount namespace."""
    cfg = busybox.default_config(["sleep", "100"])
    linux = cfg["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "mount"]
    linux.pop("maskedPaths", None)
    linux.pop("readonlyPaths", None)
    path = bundle(cfg)
    cid = new_id()
    moor.containers.append(cid)
    rt = " ".join(moor.argv())
    script = f"""
        {rt} create --bundle {path} {cid} </dev/null >/dev/null || exit 10
        {rt} start {cid} || exit 11
        {rt} exec {cid} ls /linuxrc || exit 12
        grep -c " {path}/rootfs" /proc/self/mountinfo
        {rt} delete --force {cid} || exit 13
        grep -c " {path}/rootfs" /proc/self/mountinfo
        exit 0
    """
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    listed, mounted, left = done.stdout.split()
    assert listed == "/linuxrc"
    assert int(mounted) > 5
    assert left == "0"


def test_refuses_masked_paths_without_mount_namespace(moor: Runtime, bundle: BundleFactory) -> None:
    cfg = busybox.default_config(["true"])
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "mount"]
    r = moor("run", "--bundle", bundle(cfg), new_id())
    assert r.rc == 1
    assert "unable to restrict sys entries without a private MNT namespace" in r.err


# Device rules a container image would not get by default, on nodes outside the runtime's
# own allowlist: fuse and loop-control (harmless to open), kmsg (never allowed here).
_PROBED_DEVICES = {"p-fuse": (10, 229), "p-loop": (10, 237), "p-kmsg": (1, 11)}
_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"},
    {"allow": True, "type": "c", "major": 10, "access": "rw"},
    {"allow": False, "type": "c", "major": 10, "access": "w"},
]


def _probe_devices(runtime: Runtime, bundle: BundleFactory, mode: str | None) -> list[str]:
    script = "; ".join(
        f"(exec 3<'/dev/{name}') 2>/dev/null && echo {name}-r:ok || echo {name}-r:no; "
        f"(exec 3>'/dev/{name}') 2>/dev/null && echo {name}-w:ok || echo {name}-w:no"
        for name in _PROBED_DEVICES)
    cfg = _config(["sh", "-c", script], f"/{new_id()}")
    cfg["linux"]["devices"] = [{"path": f"/dev/{name}", "type": "c", "major": major,
                                "minor": minor, "fileMode": 0o666}
                               for name, (major, minor) in _PROBED_DEVICES.items()]
    cfg["linux"]["resources"]["devices"] = _DEVICE_RULES
    if mode:
        runtime.global_args = ["--cgroup-mode", mode]
    done = runtime("run", "--bundle", bundle(cfg), new_id())
    assert done.rc == 0, done.err
    return done.out.split()


@pytest.mark.skipif(not (UNIFIED / "cgroup.controllers").exists(), reason="no cgroup2 tree")
def test_cgroup_v2_device_rules_allow_what_v1_allows(
    moor: Runtime, make_runtime: Callable[[str], Runtime], bundle: BundleFactory
) -> None:
    """cgroup v2 has no devices files: the rules become an eBPF program on the cgroup, and
    it answers as the v1 controller (under moor-runtime and under runc) does."""
    v2 = _probe_devices(moor, bundle, "v2")
    # /dev/fuse opens for reading only where the module is loaded: read is "ok" or an
    # error past the cgroup check, either way the same under each runtime.
    assert [p for p in v2 if not p.startswith("p-fuse-r")] == [
        "p-fuse-w:no", "p-loop-r:ok", "p-loop-w:no", "p-kmsg-r:no", "p-kmsg-w:no"]
    assert _probe_devices(make_runtime("moor-runtime"), bundle, "v1") == v2
    assert _probe_devices(make_runtime("runc"), bundle, None) == v2
