"""Values of container flags shared by create/run and update: sizes, restart policies,
healthchecks and log drivers."""

from __future__ import annotations

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
    for key, flag in _HEALTH_TIMINGS:
        value = getattr(opts, flag.replace("-", "_"))
        timings[key] = duration_ns(value, flag) if value else 0
    retries = opts.health_retries or 0
    if opts.no_healthcheck:
        if opts.health_cmd or retries or any(timings.values()):
            raise CommandError("--no-healthcheck conflicts with --health-* options", 125,
                               with_help=True)
        return {"Test": ["NONE"]}
    if not (opts.health_cmd or retries or any(timings.values())):
        return None
    for key, flag in _HEALTH_TIMINGS:
        if timings[key] < 0:
            raise CommandError(f"--{flag} cannot be negative", 125, with_help=True)
    if retries < 0:
        raise CommandError("--health-retries cannot be negative", 125, with_help=True)
    return {"Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None,
            **timings, "Retries": retries}


def log_config(opts: Any) -> dict[str, Any]:
    options = dict(o.partition("=")[::2] for o in opts.log_opt)
    if opts.log_driver == "none" and options:
        raise CommandError("invalid logging opts for driver none", 125, with_help=True)
    return {"Type": opts.log_driver or "", "Config": options}
