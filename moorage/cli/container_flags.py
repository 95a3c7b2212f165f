"""Values of container flags shared by create/run and update: sizes, resources, restart
policies, healthchecks and log drivers."""

from __future__ import annotations

import os

from moorage.cli.flags import INT, STR, flag
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "1024" (binary multiples)."""
    lowered = text.strip().lower().removesuffix("b") if len(text) > 1 else text.lower()
    unit = lowered[-1] if lowered and lowered[-1] in _UNITS else "b"
    number = lowered[:-1] if lowered and lowered[-1] in _UNITS else lowered
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise CommandError(f"invalid size: '{text}'", 125, with_help=True) from None


def restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    policy: dict[str, Any] = {"Name": "" if name == "no" else name}
    if count:
        policy["MaximumRetryCount"] = int(count)
    return policy


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def duration_ns(text: str, flag: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms", "0") in nanoseconds, or the CLI's error."""
    import re

    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    parts = re.findall(r"(\d*\.?\d*)(ns|us|µs|ms|s|m|h)", body)
    if body == "0":
        return 0
    if not body or not parts or "".join(n + u for n, u in parts) != body \
            or any(n in ("", ".") for n, _ in parts):
        raise CommandError(f'invalid argument "{text}" for "--{flag}" flag: time: invalid '
                           f'duration "{text}"', 125, with_help=True)
    return sign * int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


_HEALTH_TIMINGS = (("Interval", "health-interval"), ("Timeout", "health-timeout"),
                   ("StartPeriod", "health-start-period"),
                   ("StartInterval", "health-start-interval"))


def healthcheck(opts: Any) -> dict[str, Any] | None:
    """The docker CLI's HealthConfig from --health-* and --no-healthcheck."""
    timings = {}
    for key, option in _HEALTH_TIMINGS:
        value = getattr(opts, option.replace("-", "_"))
        timings[key] = duration_ns(value, option) if value else 0
    retries = opts.health_retries or 0
    if opts.no_healthcheck:
        if opts.health_cmd or retries or any(timings.values()):
            raise CommandError("--no-healthcheck conflicts with --health-* options", 125,
                               with_help=True)
        return {"Test": ["NONE"]}
    if not (opts.health_cmd or retries or any(timings.values())):
        return None
    for key, option in _HEALTH_TIMINGS:
        if timings[key] < 0:
            raise CommandError(f"--{option} cannot be negative", 125, with_help=True)
    if retries < 0:
        raise CommandError("--health-retries cannot be negative", 125, with_help=True)
    return {"Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None,
            **timings, "Retries": retries}


def log_config(opts: Any) -> dict[str, Any]:
    options = dict(o.partition("=")[::2] for o in opts.log_opt)
    if opts.log_driver == "none" and options:
        raise CommandError("invalid logging opts for driver none", 125, with_help=True)
    return {"Type": opts.log_driver or "", "Config": options}


# The resource flags `create`, `run` and `update` share, as the docker CLI spells them.
RESOURCE_FLAGS = (
    flag("blkio-weight", INT, "Block IO (relative weight), between 10 and 1000, or 0 to "
                              "disable (default 0)"),
    flag("cpu-period", INT, "Limit CPU CFS (Completely Fair Scheduler) period"),
    flag("cpu-quota", INT, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    flag("cpu-rt-period", INT, "Limit CPU real-time period in microseconds"),
    flag("cpu-rt-runtime", INT, "Limit CPU real-time runtime in microseconds"),
    flag("c|cpu-shares", INT, "CPU shares (relative weight)"),
    flag("cpus", STR, "Number of CPUs"),
    flag("cpuset-cpus", STR, "CPUs in which to allow execution (0-3, 0,1)"),
    flag("cpuset-mems", STR, "MEMs in which to allow execution (0-3, 0,1)"),
    flag("m|memory", STR, "Memory limit"),
    flag("memory-reservation", STR, "Memory soft limit"),
    flag("memory-swap", STR, "Swap limit equal to memory plus swap: '-1' to enable unlimited "
                             "swap"),
    flag("pids-limit", INT, "Tune container pids limit (set -1 for unlimited)"),
)

_INT_RESOURCES = (("blkio_weight", "BlkioWeight"), ("cpu_period", "CpuPeriod"),
                  ("cpu_quota", "CpuQuota"), ("cpu_rt_period", "CpuRealtimePeriod"),
                  ("cpu_rt_runtime", "CpuRealtimeRuntime"), ("cpu_shares", "CpuShares"))


def resources(opts: Any) -> dict[str, Any]:
    """The HostConfig resources the RESOURCE_FLAGS set (only those given; a command may
    define only some of them, as build does)."""
    def given(name: str) -> Any:
        return getattr(opts, name, None)

    out: dict[str, Any] = {key: given(name) for name, key in _INT_RESOURCES if given(name)}
    for name, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation")):
        if given(name):
            out[key] = ram_in_bytes(given(name))
    if given("memory_swap"):
        out["MemorySwap"] = -1 if opts.memory_swap == "-1" else ram_in_bytes(opts.memory_swap)
    if given("cpus"):
        try:
            out["NanoCpus"] = int(float(opts.cpus) * 1e9)
        except ValueError:
            raise CommandError(f'invalid argument "{opts.cpus}" for "--cpus" flag',
                               125, with_help=True) from None
    for name, key in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if given(name):
            out[key] = given(name)
    if given("pids_limit") is not None:
        out["PidsLimit"] = opts.pids_limit
    return out


def file_lines(paths: list[str], given: list[str]) -> list[str]:
    """The lines of the files `paths` (not blank, not comments), then `given`: the docker
    CLI's --env-file and --label-file."""
    items: list[str] = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as err:
            raise CommandError(f"open {path}: {err.strerror.lower()}", 125,
                               with_help=True) from None
        items += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return items + given


def env_list(env_files: list[str], env: list[str]) -> list[str]:
    """-e and --env-file as the docker CLI sends them: `-e NAME` passes the caller's value,
    if it has one."""
    out = []
    for item in file_lines(env_files, env):
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out
