"""The cgroup manager on the real cgroups of this host, and its pure conversions.

The v1 tests need cgroup v1 hierarchies; the v2 tests need a cgroup2 tree (the
whole of /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host). Each test
removes the cgroups it made and kills the processes it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from runtimekit import BundleFactory, Runtime, available, new_id

from moorage.devkit import busybox
from moorage.errors import InvalidParameter, SystemFailure
from moorage.runtime.cgroups import (
    CgroupManager,
    detect_mode,
    load_manager,
    new_manager,
)
from moorage.runtime.cgroups.convert import (
    cpu_max,
    device_rule,
    io_weight,
    limit_value,
    memsw_first,
    shares_to_weight,
    swap_max,
    v2_controllers,
)
from moorage.runtime.cgroups.paths import clean_path

MODE = detect_mode() if os.path.isdir("/sys/fs/cgroup") else "none"
needs_v1 = pytest.mark.skipif(MODE not in ("hybrid", "legacy"), reason="no cgroup v1 hierarchies")
needs_v2 = pytest.mark.skipif(MODE not in ("hybrid", "unified"), reason="no cgroup2 tree")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
V2_ROOT = "/sys/fs/cgroup" if MODE == "unified" else "/sys/fs/cgroup/unified"


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def own_cgroup(controller: str) -> str:
    """This process's cgroup in the hierarchy of `controller` ("" for cgroup2)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(",") or names == controller:
                return path.rstrip("/")
    raise AssertionError(f"{controller} is not in /proc/self/cgroup")


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def hierarchy_dirs(manager: CgroupManager) -> list[str]:
    return [path for key, path in manager.paths.items() if key != "created"]


@pytest.fixture
def managers() -> Iterator[Callable[..., CgroupManager]]:
    """Factory like new_manager(); every manager is destroyed at teardown."""
    made: list[CgroupManager] = []

    def factory(
        cgroups_path: str | None, container_id: str = "", mode: str = "auto"
    ) -> CgroupManager:
        manager = new_manager(cgroups_path, container_id or new_id(), mode)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.destroy()


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Factory: a `sleep 30` child, killed and reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def factory() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["sleep", "30"])
        started.append(process)
        return process

    yield factory
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


# --------------------------------------------------------------------------- pure conversions


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (0, 1)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [(50000, 100000, "50000 100000"), (-1, 100000, "max 100000"), (0, 100000, "max 100000"),
     (20000, 0, "20000"), (-1, 0, "max"), (0, 0, None)],
)
def test_cpu_max(quota: int, period: int, expected: str | None) -> None:
    assert cpu_max(quota, period) == expected


def test_swap_max_is_swap_beyond_memory() -> None:
    assert swap_max(swap=300, limit=100) == "200"
    assert swap_max(swap=100, limit=100) == "0"
    assert swap_max(swap=-1, limit=100) == "max"
    assert swap_max(swap=0, limit=100) is None
    # Unlimited memory with no word on swap: unlimited swap, as cgroup v1 does.
    assert swap_max(swap=0, limit=-1) == "max"
    with pytest.raises(InvalidParameter, match=r"below memory\.limit"):
        swap_max(swap=50, limit=100)
    with pytest.raises(InvalidParameter, match="without a memory limit"):
        swap_max(swap=50, limit=0)


def test_limit_value_and_memsw_order() -> None:
    assert limit_value(0) is None
    assert limit_value(-1) == "max"
    assert limit_value(42) == "42"
    assert memsw_first(limit=200, swap=400, current_limit=100)
    assert memsw_first(limit=200, swap=-1, current_limit=100)
    assert not memsw_first(limit=50, swap=80, current_limit=100)
    assert not memsw_first(limit=200, swap=0, current_limit=100)


def test_io_weight_and_device_rules() -> None:
    assert (io_weight(10), io_weight(1000)) == (1, 10000)
    assert device_rule({"allow": False, "access": "rwm"}) == ("devices.deny", "a")
    assert device_rule({"allow": True, "type": "c", "major": 1, "minor": 3}) == (
        "devices.allow", "c 1:3 rwm")
    assert device_rule({"allow": True, "type": "c", "major": 136, "access": "rw"}) == (
        "devices.allow", "c 136:* rw")
    assert device_rule({"allow": False, "type": "b", "major": -1, "minor": -1, "access": "m"}) == (
        "devices.deny", "b *:* m")
    with pytest.raises(InvalidParameter):
        device_rule({"allow": True, "type": "x"})
    with pytest.raises(InvalidParameter):
        device_rule({"allow": True, "type": "c", "access": "rwx"})


def test_device_rules_reduce_as_the_v1_controller_keeps_them() -> None:
    from moorage.runtime.cgroups.devicefilter import effective

    assert effective([]) == (True, [])
    # agreeing with the default takes access away; an 'a' rule starts over
    assert effective([{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                      {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"}]) \
        == (True, [("c", 1, 3, 2)])
    assert effective([{"allow": True, "type": "c", "major": 1, "minor": 3},
                      {"allow": False, "access": "rwm"},
                      {"allow": True, "type": "b", "major": 8, "access": "m"},
                      {"allow": True, "type": "b", "major": 8, "access": "r"}]) \
        == (False, [("b", 8, None, 3)])


def test_v2_controllers() -> None:
    assert v2_controllers({}) == []
    assert v2_controllers({"devices": [{"allow": False}]}) == []
    assert v2_controllers({
        "cpu": {"shares": 512, "cpus": "0"}, "memory": {"limit": 1}, "pids": {"limit": 5},
        "unified": {"memory.high": "1", "cgroup.max.depth": "2", "io.max": "x"},
    }) == ["cpu", "cpuset", "memory", "pids", "io"]


def test_clean_path_follows_runc() -> None:
    assert clean_path(None, "abc") == "abc"
    assert clean_path("", "abc") == "abc"
    assert clean_path("a/b/../c", "abc") == "a/c"
    assert clean_path("../../x", "abc") == "x"
    assert clean_path("//x/../y/", "abc") == "/y"
    for bad in ("/", "..", "/a/.."):
        with pytest.raises(InvalidParameter):
            clean_path(bad, "abc")


# --------------------------------------------------------------------------- cgroup v1


@needs_root
@needs_v1
def test_v1_resources_are_written(managers: Callable[..., CgroupManager]) -> None:
    manager = managers(f"/{new_id()}")
    manager.create({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "access": "rw"},
        ],
    })
    paths = manager.paths
    assert read(paths["memory"] + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(paths["memory"] + "/memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(paths["memory"] + "/memory.swappiness") == "10"
    assert read(paths["cpu"] + "/cpu.shares") == "512"
    assert read(paths["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert read(paths["cpu"] + "/cpu.cfs_period_us") == "100000"
    assert read(paths["cpuset"] + "/cpuset.cpus") == "0"
    assert read(paths["cpuset"] + "/cpuset.mems") == "0"
    assert read(paths["pids"] + "/pids.max") == "42"
    assert read(paths["devices"] + "/devices.list").splitlines() == ["c 1:3 rwm", "c 136:* rw"]
    stats = manager.stats()
    assert stats["memory_limit"] == 64 << 20
    assert stats["pids_current"] == 0

    manager.apply({"pids": {"limit": -1}, "cpu": {"quota": -1}})
    assert read(paths["pids"] + "/pids.max") == "max"
    assert read(paths["cpu"] + "/cpu.cfs_quota_us") == "-1"


@needs_root
@needs_v1
def test_v1_swap_limit_raise_and_cut(managers: Callable[..., CgroupManager]) -> None:
    manager = managers(f"/{new_id()}")
    manager.create(None)
    memory = manager.paths["memory"]
    if not os.path.exists(memory + "/memory.memsw.limit_in_bytes"):
        with pytest.raises(SystemFailure, match="swap accounting"):
            manager.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
        return
    # Each step must order memory and memory+swap so that memory <= memory+swap holds.
    for limit, swap in ((64 << 20, 128 << 20), (256 << 20, 512 << 20), (32 << 20, 48 << 20)):
        manager.apply({"memory": {"limit": limit, "swap": swap}})
        assert read(memory + "/memory.limit_in_bytes") == str(limit)
        assert read(memory + "/memory.memsw.limit_in_bytes") == str(swap)


@needs_root
@needs_v1
def test_v1_process_freeze_kill_destroy(
    managers: Callable[..., CgroupManager],
    sleeper: Callable[[], subprocess.Popen[bytes]],
) -> None:
    manager = managers(f"/{new_id()}", mode="v1")
    manager.create({"pids": {"limit": 10}})
    first, second = sleeper(), sleeper()
    manager.add_process(first.pid)
    for directory in set(hierarchy_dirs(manager)):
        assert read(directory + "/cgroup.procs").split() == [str(first.pid)]
    # A sub-cgroup made from inside the container counts, and goes with destroy().
    manager.add_process(second.pid)
    nested = manager.paths["devices"] + "/nested"
    os.mkdir(nested)
    with open(nested + "/cgroup.procs", "w") as f:
        f.write(str(second.pid))
    assert sorted(manager.pids()) == sorted([first.pid, second.pid])
    assert manager.stats()["pids_current"] == 2

    manager.freeze()
    assert manager.frozen()
    assert read(manager.paths["freezer"] + "/freezer.state") == "FROZEN"
    # cgroup v1 frozen tasks show as uninterruptible sleep.
    assert proc_state(first.pid) == "D"
    manager.thaw()
    assert not manager.frozen()
    assert proc_state(first.pid) == "S"

    # A paused container keeps its other signals pending until resumed.
    manager.freeze()
    manager.kill_all(signal.SIGTERM)
    assert manager.frozen()
    manager.thaw()
    assert first.wait(5) == -signal.SIGTERM
    assert second.wait(5) == -signal.SIGTERM

    state = json.loads(json.dumps(manager.paths))
    load_manager(state).destroy()
    for directory in hierarchy_dirs(manager):
        assert not os.path.exists(directory)
    load_manager(state).destroy()  # idempotent


@needs_root
@needs_v1
def test_v1_kill_all_sigkill_on_paused_container(
    managers: Callable[..., CgroupManager],
    sleeper: Callable[[], subprocess.Popen[bytes]],
) -> None:
    manager = managers(f"/{new_id()}", mode="v1")
    manager.create(None)
    process = sleeper()
    manager.add_process(process.pid)
    manager.freeze()
    manager.kill_all(signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL
    manager.destroy()
    assert not os.path.exists(manager.paths["freezer"])


@needs_root
@needs_v1
def test_v1_relative_path_is_below_own_cgroup(managers: Callable[..., CgroupManager]) -> None:
    parent = new_id()
    manager = managers(f"{parent}/sub", mode="v1")
    manager.create(None)
    for controller in ("memory", "pids", "cpu", "devices"):
        expected = f"/sys/fs/cgroup/{controller}{own_cgroup(controller)}/{parent}/sub"
        assert manager.paths[controller] == expected
        assert os.path.isdir(expected)
    if MODE == "hybrid":
        assert manager.paths[""] == f"{V2_ROOT}{own_cgroup('')}/{parent}/sub"
    manager.destroy()
    # The parent was made by create(), so destroy() takes it too.
    for controller in ("memory", "pids"):
        assert not os.path.exists(f"/sys/fs/cgroup/{controller}{own_cgroup(controller)}/{parent}")


@needs_root
@needs_v1
def test_v1_empty_path_is_container_id_relative(managers: Callable[..., CgroupManager]) -> None:
    cid = new_id()
    manager = managers(None, cid, mode="v1")
    assert manager.paths["memory"] == f"/sys/fs/cgroup/memory{own_cgroup('memory')}/{cid}"


@needs_root
@needs_v1
def test_v1_absolute_path_keeps_existing_parent(managers: Callable[..., CgroupManager]) -> None:
    parent = f"/sys/fs/cgroup/pids/{new_id()}"
    os.mkdir(parent)
    try:
        name = parent.rsplit("/", 1)[1]
        manager = managers(f"/{name}/sub", mode="v1")
        assert manager.paths["memory"] == f"/sys/fs/cgroup/memory/{name}/sub"
        manager.create(None)
        manager.destroy()
        assert not os.path.exists(manager.paths["pids"])
        # It existed before create(): not ours to remove.
        assert os.path.isdir(parent)
        assert not os.path.exists(f"/sys/fs/cgroup/memory/{name}")
    finally:
        os.rmdir(parent)


@needs_root
@needs_v1
def test_v1_rejected_values_leave_nothing(managers: Callable[..., CgroupManager]) -> None:
    manager = managers(f"/{new_id()}", mode="v1")
    with pytest.raises(InvalidParameter) as e:
        manager.create({"cpu": {"cpus": "0-x"}})
    assert str(e.value) == (
        f'cgroup: cannot write "0-x" to {manager.paths["cpuset"]}/cpuset.cpus: Invalid argument')
    with pytest.raises(InvalidParameter, match="out of range"):
        manager.create({"cpu": {"cpus": "4095"}})
    for directory in hierarchy_dirs(manager):
        assert not os.path.exists(directory)
    with pytest.raises(InvalidParameter, match="unified needs cgroup v2"):
        manager.create({"unified": {"memory.high": "1"}})
    assert not os.path.exists(manager.paths["memory"])


# --------------------------------------------------------------------------- cgroup v2


@needs_root
@needs_v2
def test_v2_process_freeze_kill_destroy(
    managers: Callable[..., CgroupManager],
    sleeper: Callable[[], subprocess.Popen[bytes]],
) -> None:
    name = new_id()
    manager = managers(f"/{name}", mode="v2")
    assert manager.paths == {"": f"{V2_ROOT}/{name}"}
    # cgroup.* files need no controller, so this works on any cgroup2 tree.
    manager.create({"unified": {"cgroup.max.depth": "2"}})
    leaf = manager.paths[""]
    assert read(leaf + "/cgroup.max.depth") == "2"
    process = sleeper()
    manager.add_process(process.pid)
    assert read(leaf + "/cgroup.procs") == str(process.pid)
    assert manager.pids() == [process.pid]
    assert own_cgroup_of(process.pid) == f"/{name}"

    manager.freeze()
    assert "frozen 1" in read(leaf + "/cgroup.events")
    assert manager.frozen()
    assert proc_state(process.pid) in ("S", "D")
    assert _stays_asleep(process.pid)
    manager.thaw()
    assert not manager.frozen()
    assert read(leaf + "/cgroup.freeze") == "0"

    state = json.loads(json.dumps(manager.paths))
    load_manager(state).kill_all(signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL
    load_manager(state).destroy()
    assert not os.path.exists(leaf)


def own_cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise AssertionError(f"{pid} has no cgroup2 line")


def _stays_asleep(pid: int) -> bool:
    """A frozen process consumes no CPU time at all, even when woken by a signal."""
    def cpu_ticks() -> int:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    os.kill(pid, signal.SIGCONT)
    time.sleep(0.05)
    return cpu_ticks() == before


@needs_root
@needs_v2
def test_v2_unavailable_controller_is_named(managers: Callable[..., CgroupManager]) -> None:
    available_controllers = read(V2_ROOT + "/cgroup.controllers").split()
    if "memory" in available_controllers:
        pytest.skip("memory is available in this cgroup2 tree")
    manager = managers(f"/{new_id()}", mode="v2")
    with pytest.raises(SystemFailure) as e:
        manager.create({"memory": {"limit": 64 << 20}})
    assert str(e.value) == f"cgroup v2: controller 'memory' is not available in {V2_ROOT}"
    assert not os.path.exists(manager.paths[""])


@needs_root
@needs_v2
def test_v2_enables_controllers_down_the_tree(managers: Callable[..., CgroupManager]) -> None:
    """pids where the tree has it, else hugetlb (the one a hybrid host usually leaves to v2)."""
    controllers = read(V2_ROOT + "/cgroup.controllers").split()
    enabled_before = read(V2_ROOT + "/cgroup.subtree_control").split()
    parent = new_id()
    manager = managers(f"/{parent}/sub", mode="v2")
    leaf = manager.paths[""]
    try:
        if "pids" in controllers:
            manager.create({"pids": {"limit": 7}, "unified": {"pids.max": "9"}})
            assert read(leaf + "/pids.max") == "9"
        elif "hugetlb" in controllers:
            manager.create({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
            assert read(leaf + "/hugetlb.2MB.max") == str(4 << 20)
        else:
            pytest.skip("neither pids nor hugetlb is in this cgroup2 tree")
        assert read(f"{V2_ROOT}/{parent}/cgroup.subtree_control") in ("pids", "hugetlb")
        manager.destroy()
        assert not os.path.exists(f"{V2_ROOT}/{parent}")
    finally:
        manager.destroy()
        for controller in set(read(V2_ROOT + "/cgroup.subtree_control").split()) - set(
                enabled_before):
            with open(V2_ROOT + "/cgroup.subtree_control", "w") as f:
                f.write("-" + controller)


# --------------------------------------------------------------------------- the init's own join

# Runs the rest of its command line with clone3 refused (ENOSYS, as before Linux 5.7).
_WITHOUT_CLONE3 = """
import errno, os, sys
from moorage.runtime.seccomp import compile_filter
compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone3"],
    "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]}).load()
os.execv(sys.argv[1], sys.argv[1:])
"""


@needs_root
@pytest.mark.parametrize("clone3", [True, False])
def test_init_is_in_the_container_cgroup_in_every_hierarchy(
    clone3: bool, make_runtime: Callable[[str], Runtime], bundle: BundleFactory
) -> None:
    """The init joins its cgroup itself (v1 by "0" in tasks, cgroup2 by clone3) or,
    where clone3 is refused, has its cgroup2 pid written: in both, every hierarchy
    names the container's cgroup."""
    runtime = make_runtime("moor-runtime")
    if not clone3:
        runtime.wrapper = [sys.executable, "-c", _WITHOUT_CLONE3]
    cid, parent = new_id(), new_id()
    config = busybox.default_config(["cat", "/proc/self/cgroup"])
    config["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
    r = runtime("run", "--bundle", bundle(config), cid)
    assert r.rc == 0, r.err
    lines = r.out.split()
    assert lines and all(line.endswith(f":/{parent}/{cid}") for line in lines), lines
    if MODE != "legacy":
        assert f"0::/{parent}/{cid}" in lines


# --------------------------------------------------------------------------- against runc


@needs_root
@pytest.mark.skipif(not available("runc"), reason="runc not installed")
@pytest.mark.parametrize("kind", ["empty", "relative", "absolute"])
def test_paths_match_runc(
    kind: str, make_runtime: Callable[[str], Runtime], bundle: BundleFactory
) -> None:
    """runc's state.json cgroup_paths for the same cgroupsPath are ours, key for key."""
    runc = make_runtime("runc")
    cid, parent = new_id(), new_id()
    cgroups_path = {"empty": None, "relative": f"{parent}/sub", "absolute": f"/{parent}/sub"}[kind]
    config = busybox.default_config(["sleep", "30"])
    if cgroups_path:
        config["linux"]["cgroupsPath"] = cgroups_path
    r = runc("create", "--bundle", bundle(config), cid)
    assert r.rc == 0, r.err
    with open(f"{runc.root}/{cid}/state.json") as f:
        theirs = json.load(f)["cgroup_paths"]
    assert runc("delete", "--force", cid).rc == 0
    # runc removes only the leaf and leaves the parents it made behind.
    for directory in {os.path.dirname(d) for d in theirs.values()}:
        if os.path.basename(directory) == parent:
            os.rmdir(directory)
    assert new_manager(cgroups_path, cid).paths == theirs
