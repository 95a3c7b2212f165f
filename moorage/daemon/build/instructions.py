"""The instructions that only change the image config, as moby's classic builder
applies them (builder/dockerfile/dispatchers.go), with the history text it records."""

from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any

from moorage import environ
from moorage.build.dockerfile import Instruction, error
from moorage.build.words import process_word, process_words
from moorage.daemon.containers.spec import parse_signal
from moorage.errors import InvalidParameter

Config = dict[str, Any]
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}


def go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def env_map(config: Config) -> dict[str, str]:
    out = {}
    for item in config.get("Env") or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


def pairs(inst: Instruction, env: dict[str, str], escape: str) -> list[tuple[str, str]]:
    """``k=v …`` pairs, or the legacy ``KEY value with spaces`` form (ENV, LABEL)."""
    words = process_words(inst.args, env, escape)
    first = inst.args.split(None, 1)[0]
    if "=" not in first:
        key, _, rest = inst.args.partition(" ")
        rest = rest.strip()
        if not rest:
            raise error(inst.line, f"{inst.name.upper()} must have two arguments")
        return [(process_word(key, env, escape), process_word(rest, env, escape))]
    found = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise error(inst.line, f"Syntax error - can't find = in \"{word}\". Must be of "
                                   "the form: name=value")
        if not key:
            raise error(inst.line, f"{inst.name.upper()} names can not be blank")
        found.append((key, value))
    return found


def apply_env(config: Config, items: list[tuple[str, str]]) -> str:
    config["Env"] = environ.merge(config.get("Env") or (), [f"{k}={v}" for k, v in items])
    return "ENV " + " ".join(f"{k}={v}" for k, v in items)


def apply_label(config: Config, items: list[tuple[str, str]]) -> str:
    config["Labels"] = {**(config.get("Labels") or {}), **dict(items)}
    return "LABEL " + " ".join(f"{k}={v}" for k, v in items)


def command(inst: Instruction, shell: list[str]) -> list[str]:
    exec_form = inst.json_args()
    if exec_form is not None:
        return exec_form
    return [*shell, inst.args]


def apply_cmd(config: Config, inst: Instruction, shell: list[str]) -> str:
    cmd = command(inst, shell)
    config["Cmd"] = cmd
    return f"CMD {go_quote_list(cmd)}"


def apply_entrypoint(config: Config, inst: Instruction, shell: list[str],
                     cmd_set: bool) -> str:
    entrypoint = command(inst, shell) if inst.args else None
    config["Entrypoint"] = entrypoint
    if not cmd_set:
        config["Cmd"] = None
    return f"ENTRYPOINT {go_quote_list(entrypoint or [])}"


def apply_expose(config: Config, inst: Instruction, env: dict[str, str], escape: str) -> str:
    ports = dict(config.get("ExposedPorts") or {})
    specs = process_words(inst.args, env, escape)
    for spec in specs:
        number, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = number.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) \
                or proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid containerPort: {number}" if proto in (
                "tcp", "udp", "sctp") else f"invalid proto: {proto}")
        for port in range(int(low), int(high or low) + 1):
            ports[f"{port}/{proto}"] = {}
    config["ExposedPorts"] = ports
    # dockerd's comment is the words as written (expanded) and sorted, not the ports.
    return "EXPOSE " + " ".join(sorted(specs))


def apply_volume(config: Config, inst: Instruction, env: dict[str, str], escape: str) -> str:
    paths = inst.json_args()
    if paths is None:
        paths = process_words(inst.args, env, escape)
    volumes = dict(config.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise InvalidParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = volumes
    return f"VOLUME [{' '.join(paths)}]"


def workdir(config: Config, inst: Instruction, env: dict[str, str], escape: str) -> str:
    path = process_word(inst.args, env, escape)
    config["WorkingDir"] = posixpath.normpath(
        posixpath.join("/", config.get("WorkingDir") or "/", path))
    return config["WorkingDir"]


def apply_shell(config: Config, inst: Instruction) -> str:
    shell = inst.json_args() or []  # the parser checked the JSON form
    config["Shell"] = shell
    return f"SHELL [{' '.join(shell)}]"


def apply_stopsignal(config: Config, inst: Instruction, env: dict[str, str],
                     escape: str) -> str:
    value = process_word(inst.args, env, escape)
    parse_signal(value)
    config["StopSignal"] = value
    return f"STOPSIGNAL {value}"


def _duration(name: str, value: str | None) -> int:
    if value is None:
        return 0
    total = 0
    rest = value
    while rest:
        match = re.match(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", rest)
        if not match:
            raise InvalidParameter(f'time: invalid duration "{value}"')
        total += int(float(match.group(1)) * _UNITS[match.group(2)])
        rest = rest[match.end():]
    if total != 0 and total < 10**6:
        raise InvalidParameter(f"Interval \"{name}\" cannot be less than 1ms")
    return total


def apply_healthcheck(config: Config, inst: Instruction) -> str:
    word, _, rest = inst.args.partition(" ")
    word = word.upper()
    if word == "NONE":
        if rest.strip():
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        config["Healthcheck"] = {"Test": ["NONE"]}
        return "HEALTHCHECK NONE"
    if word != "CMD":
        raise InvalidParameter(f'Unknown type "{word}" in HEALTHCHECK (try CMD)')
    rest = rest.strip()
    probe = Instruction("cmd", rest, rest, inst.line)
    exec_form = probe.json_args()
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", rest]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod")):
        value = _duration(flag, inst.flags.get(flag))
        if value:
            check[key] = value
    if "retries" in inst.flags:
        try:
            retries = int(inst.flags["retries"])
        except ValueError:
            raise InvalidParameter(f'strconv.ParseInt: parsing "{inst.flags["retries"]}": '
                                   "invalid syntax") from None
        if retries < 1:
            raise InvalidParameter(f"--retries cannot be less than 1 ({retries})")
        check["Retries"] = retries
    config["Healthcheck"] = check
    return f"HEALTHCHECK {go_quote_list(test)}"


def apply_onbuild(config: Config, inst: Instruction) -> str:
    # The parser refused chained and forbidden triggers.
    config["OnBuild"] = [*(config.get("OnBuild") or []), inst.args]
    return f"ONBUILD {inst.args}"


def step_config(config: Config, parent: str | None) -> Config:
    """The config a classic build's step gives its image: the stage's, with the image the
    step started from as Image (dockerd sets runConfig.Image to it at every step)."""
    return {**copy.deepcopy(config), "Image": parent or ""}


def comment_config(config: Config, cmd: list[str], parent: str | None,
                   container: str = "") -> Config:
    """The container_config a classic build records: the step's command as Cmd.
    `container`: the one dockerd makes for a step that changes only the config, whose
    create gives that config its hostname and an empty label map."""
    recorded = step_config(config, parent)
    recorded["Cmd"] = cmd
    if container:
        recorded["Hostname"] = container[:12]
        recorded["Labels"] = recorded.get("Labels") or {}
    return recorded
