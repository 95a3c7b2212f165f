"""Docker's stats document from cgroup v1 and v2 files (fake trees: the host is one kind)."""

from __future__ import annotations

from pathlib import Path

from moorage.daemon.containers import stats


def _files(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def test_v2(tmp_path: Path) -> None:
    leaf = _files(tmp_path, {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                    "nr_throttled 1\nthrottled_usec 20\n",
        "memory.current": "4096\n", "memory.max": "8388608\n",
        "memory.stat": "anon 100\ninactive_file 7\n",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
        "pids.current": "3\n", "pids.max": "max\n"})
    doc = stats._v2(leaf)
    assert doc["cpu_stats"]["cpu_usage"] == {"total_usage": 1_500_000,
                                             "usage_in_kernelmode": 500_000,
                                             "usage_in_usermode": 1_000_000}
    assert doc["cpu_stats"]["throttling_data"] == {"periods": 4, "throttled_periods": 1,
                                                   "throttled_time": 20_000}
    assert doc["memory_stats"] == {"usage": 4096, "stats": {"anon": 100, "inactive_file": 7},
                                   "limit": 8388608}
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 10},
        {"major": 8, "minor": 0, "op": "write", "value": 20}]
    assert doc["pids_stats"] == {"current": 3}


def test_v1(tmp_path: Path) -> None:
    paths = {
        "memory": _files(tmp_path / "memory", {
            "memory.usage_in_bytes": "8192", "memory.max_usage_in_bytes": "9000",
            "memory.limit_in_bytes": "67108864", "memory.failcnt": "0",
            "memory.stat": "cache 1\ntotal_inactive_file 2\n"}),
        "cpuacct": _files(tmp_path / "cpuacct", {
            "cpuacct.usage": "300", "cpuacct.usage_percpu": "100 200\n",
            "cpuacct.stat": "user 2\nsystem 1\n"}),
        "cpu": _files(tmp_path / "cpu", {"cpu.stat": "nr_periods 0\nnr_throttled 0\n"
                                                    "throttled_time 0\n"}),
        "blkio": _files(tmp_path / "blkio", {
            "blkio.throttle.io_service_bytes_recursive": "8:0 Read 5\n8:0 Write 6\nTotal 11\n",
            "blkio.throttle.io_serviced_recursive": "8:0 Read 1\nTotal 1\n"}),
        "pids": _files(tmp_path / "pids", {"pids.current": "2", "pids.max": "40"}),
    }
    doc = stats._v1(paths)
    usage = doc["cpu_stats"]["cpu_usage"]
    assert (usage["total_usage"], usage["percpu_usage"]) == (300, [100, 200])
    assert usage["usage_in_usermode"] == 2 * stats._TICK_NS
    assert doc["memory_stats"]["usage"] == 8192 and doc["memory_stats"]["limit"] == 67108864
    assert doc["memory_stats"]["stats"] == {"cache": 1, "total_inactive_file": 2}
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 5},
        {"major": 8, "minor": 0, "op": "Write", "value": 6}]
    assert doc["pids_stats"] == {"current": 2, "limit": 40}


def test_a_stopped_container_reads_zero() -> None:
    doc = stats.empty()
    assert doc["read"] == doc["preread"] == "0001-01-01T00:00:00Z"
    assert doc["memory_stats"] == {} and doc["pids_stats"] == {}
