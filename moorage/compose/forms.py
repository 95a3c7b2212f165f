"""Canonical forms of a service's keys (compose-go's: what `config` prints): mappings for
environment and labels, long syntax for ports, volumes, depends_on, secrets and configs,
commands as lists, absolute paths."""

from __future__ import annotations

import os
import shlex
from typing import Any

from moorage.compose.durations import go_duration, size
from moorage.compose.errors import ComposeError

_MAPPINGS = ("environment", "labels", "annotations", "extra_hosts", "sysctls",
             "driver_opts")


def list_or_dict(value: Any, sep: str = "=") -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): (None if v is None else _scalar(v)) for k, v in value.items()}
    out: dict[str, Any] = {}
    for item in value or ():
        name, found, rest = str(item).partition(sep)
        out[name] = rest if found else None
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_command(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as err:
            raise ComposeError(f"invalid command line: {err}") from None
    return value


def parse_port(spec: Any) -> list[dict[str, Any]]:
    """`[ip:][published[-range]:]target[-range][/proto]` → one long-syntax entry per port."""
    if isinstance(spec, dict):
        entry = dict(spec)
        entry.setdefault("mode", "ingress")
        try:
            entry["target"] = int(entry["target"])
        except ValueError:
            raise ComposeError(f"Invalid containerPort: {entry['target']}") from None
        if entry.get("published") is not None:
            entry["published"] = str(entry["published"])
        entry.setdefault("protocol", "tcp")
        return [entry]
    text = str(spec)
    text, _, proto = text.partition("/")
    host_ip = ""
    if text.startswith("["):
        end = text.index("]")
        host_ip, text = text[1:end], text[end + 2:]
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        published, target = "", parts[0]
    try:
        lo, _, hi = target.partition("-")
        targets = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ComposeError(f"Invalid containerPort: {target}") from None
    pub_lo, _, pub_hi = published.partition("-")
    out = []
    for i, port in enumerate(targets):
        entry: dict[str, Any] = {"mode": "ingress"}
        if host_ip:
            entry["host_ip"] = host_ip
        entry["target"] = port
        if pub_lo:
            entry["published"] = str(int(pub_lo) + i) if pub_hi else pub_lo
        entry["protocol"] = proto or "tcp"
        out.append(entry)
    return out


def parse_volume(spec: Any, base_dir: str) -> dict[str, Any]:
    if isinstance(spec, dict):
        entry = dict(spec)
    else:
        parts = str(spec).split(":")
        if "" in parts:
            raise ComposeError(f"invalid spec: {spec}: empty section between colons")
        mode = ""
        if len(parts) > 1 and (len(parts) == 3 or parts[-1] in ("ro", "rw", "z", "Z")
                               or "," in parts[-1]) and not parts[-1].startswith("/"):
            mode = parts.pop()
        if len(parts) == 1:
            entry = {"type": "volume", "target": parts[0], "volume": {}}
        else:
            source, target = parts[0], parts[1]
            is_path = source.startswith((".", "/", "~"))
            entry = {"type": "bind" if is_path else "volume", "source": source,
                     "target": target}
            if is_path:
                entry["bind"] = {"create_host_path": True}
            else:
                entry["volume"] = {}
        if "ro" in mode.split(","):
            entry["read_only"] = True
    if entry.get("type") == "bind" and "source" in entry:
        source = os.path.expanduser(entry["source"])
        entry["source"] = os.path.normpath(os.path.join(base_dir, source))
    return entry


def _depends(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {name: {"condition": "service_started", "required": True} for name in value}
    out = {}
    for name, cond in value.items():
        entry = dict(cond or {})
        entry.setdefault("condition", "service_started")
        entry.setdefault("required", True)
        out[name] = entry
    return out


def _labels(value: Any) -> dict[str, str]:
    """Labels as compose-go keeps them: a mapping of strings (an empty label is "")."""
    return {k: "" if v is None else v for k, v in list_or_dict(value).items()}


_DURATIONS = {"healthcheck": ("interval", "timeout", "start_period", "start_interval"),
              "restart_policy": ("delay", "window"), "update_config": ("delay", "monitor"),
              "rollback_config": ("delay", "monitor")}


def _units(svc: dict[str, Any]) -> None:
    """Durations as Go prints them, sizes in bytes (strings), cpus as numbers: compose-go's
    units, so `config` prints what Compose v2 prints."""
    if svc.get("stop_grace_period") is not None:
        svc["stop_grace_period"] = go_duration(svc["stop_grace_period"])
    deploy = svc.get("deploy")
    if isinstance(deploy, dict):
        deploy = svc["deploy"] = dict(deploy)
        if "labels" in deploy:
            deploy["labels"] = _labels(deploy["labels"])
        for section in ("limits", "reservations"):
            found = (deploy.get("resources") or {}).get(section)
            if isinstance(found, dict):
                if found.get("memory") is not None:
                    found["memory"] = str(size(found["memory"]))
                if found.get("cpus") is not None:
                    found["cpus"] = float(found["cpus"])
    for key, fields in _DURATIONS.items():
        holder = svc.get(key) if key == "healthcheck" else (deploy or {}).get(key) \
            if isinstance(deploy, dict) else None
        if isinstance(holder, dict):
            for name in fields:
                if holder.get(name) is not None:
                    holder[name] = go_duration(holder[name])
    for volume in svc.get("volumes") or ():
        if (volume.get("tmpfs") or {}).get("size") is not None:
            volume["tmpfs"]["size"] = str(size(volume["tmpfs"]["size"]))


def _file_refs(value: Any) -> list[dict[str, Any]]:
    return [{"source": v} if isinstance(v, str) else dict(v) for v in value]


def service(raw: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """One service of one file, in the forms that merge and print."""
    svc = dict(raw)
    for key in _MAPPINGS:
        if key in svc:
            svc[key] = list_or_dict(svc[key], ":" if key == "extra_hosts" else "=")
    for key in ("labels", "annotations"):
        if key in svc:
            svc[key] = _labels(svc[key])
    for key in ("command", "entrypoint"):
        if key in svc:
            svc[key] = _split_command(svc[key])
    if "ports" in svc:
        svc["ports"] = [p for spec in svc["ports"] for p in parse_port(spec)]
    if "expose" in svc:
        svc["expose"] = [str(p) for p in svc["expose"]]
    if "volumes" in svc:
        svc["volumes"] = [parse_volume(v, base_dir) for v in svc["volumes"]]
    if "depends_on" in svc:
        svc["depends_on"] = _depends(svc["depends_on"])
    for key in ("secrets", "configs"):
        if key in svc:
            svc[key] = _file_refs(svc[key])
    if "networks" in svc and isinstance(svc["networks"], list):
        svc["networks"] = {name: None for name in svc["networks"]}
    if "build" in svc:
        build = {"context": svc["build"]} if isinstance(svc["build"], str) else dict(svc["build"])
        context = build.get("context", ".")
        if "://" not in context:
            build["context"] = os.path.normpath(os.path.join(base_dir, context))
        if "dockerfile_inline" not in build:
            build.setdefault("dockerfile", "Dockerfile")
        if "args" in build:
            build["args"] = list_or_dict(build["args"])
        if "labels" in build:
            build["labels"] = _labels(build["labels"])
        if build.get("additional_contexts"):
            build["additional_contexts"] = {
                k: v if ":" in v else os.path.normpath(os.path.join(base_dir, v))
                for k, v in list_or_dict(build["additional_contexts"]).items()}
        svc["build"] = build
    if "env_file" in svc:
        files = svc["env_file"] if isinstance(svc["env_file"], list) else [svc["env_file"]]
        svc["env_file"] = [
            {"path": os.path.join(base_dir, f), "required": True} if isinstance(f, str)
            else {**f, "path": os.path.join(base_dir, f["path"]),
                  "required": f.get("required", True)}
            for f in files]
    if "label_file" in svc:
        files = svc["label_file"] if isinstance(svc["label_file"], list) \
            else [svc["label_file"]]
        svc["label_file"] = [os.path.join(base_dir, os.path.expanduser(f)) for f in files]
    check = svc.get("healthcheck")
    if isinstance(check, dict) and isinstance(check.get("test"), str):
        svc["healthcheck"] = {**check, "test": ["CMD-SHELL", check["test"]]}
    _units(svc)
    if isinstance(svc.get("extends"), str):
        svc["extends"] = {"service": svc["extends"]}
    return svc
