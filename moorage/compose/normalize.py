"""The last steps of loading: profiles, env_file and environment resolution, the default
network, resource names, and compose-go's consistency checks."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from moorage.compose import dotenv
from moorage.compose.errors import ComposeError

if TYPE_CHECKING:
    from moorage.compose.loader import Project

INVALID = "invalid compose project"


def _active(svc: dict[str, Any], profiles: list[str]) -> bool:
    wanted = svc.get("profiles")
    return not wanted or "*" in profiles or any(p in profiles for p in wanted)


def _environment(svc: dict[str, Any], env: dict[str, str]) -> None:
    merged: dict[str, Any] = {}
    for entry in svc.pop("env_file", None) or ():
        if not entry.get("required", True) and not os.path.exists(entry["path"]):
            continue
        merged.update(dotenv.read(entry["path"], env))
    merged.update(svc.get("environment") or {})
    if merged or "environment" in svc:
        svc["environment"] = {k: env.get(k) if v is None else v for k, v in merged.items()}
    labels: dict[str, Any] = {}
    for path in svc.pop("label_file", None) or ():
        labels.update(dotenv.read(path, env))
    if labels:  # the service's own labels win over the files'
        svc["labels"] = {**labels, **(svc.get("labels") or {})}


def _build_args(svc: dict[str, Any], env: dict[str, str]) -> None:
    """A build arg without a value takes the environment's, and is dropped when unset."""
    build = svc.get("build")
    if isinstance(build, dict) and build.get("args"):
        build["args"] = {k: env[k] if v is None else v for k, v in build["args"].items()
                         if v is not None or k in env}
        if not build["args"]:
            del build["args"]


# What a container is made from is a dependency even when depends_on does not say so
# (compose-go adds them): a shared namespace or a link restarts with the service it names,
# volumes_from does not.
_SHARED_NAMESPACES = ("network_mode", "ipc", "pid", "uts", "cgroup")


def _implicit_dependencies(svc: dict[str, Any]) -> None:
    implied: list[tuple[str, bool]] = [(link.split(":", 1)[0], True)
                                       for link in svc.get("links") or ()]
    implied += [(str(svc[key]).removeprefix("service:"), True) for key in _SHARED_NAMESPACES
                if str(svc.get(key, "")).startswith("service:")]
    implied += [(spec.split(":", 1)[0], False) for spec in svc.get("volumes_from") or ()
                if not spec.startswith("container:")]
    depends = svc.get("depends_on") or {}
    for name, restart in implied:
        if name not in depends:
            depends[name] = {"condition": "service_started", "required": True,
                             **({"restart": True} if restart else {})}
    if depends:
        svc["depends_on"] = depends


def _external(section: dict[str, Any]) -> None:
    """The deprecated `external: {name: x}` as compose-go reads it: `name: x, external: true`."""
    for entry in section.values():
        if isinstance(entry.get("external"), dict):
            legacy = entry.pop("external")
            entry["external"] = True
            if legacy.get("name"):
                entry["name"] = legacy["name"]


def _names(section: dict[str, Any], project: str) -> None:
    for key, entry in section.items():
        if entry.get("external"):
            entry["external"] = True
            entry.setdefault("name", key)
        else:
            entry.setdefault("name", f"{project}_{key}")
        if entry.get("driver_opts"):  # the engine takes strings; YAML may give numbers
            entry["driver_opts"] = {k: str(v) for k, v in entry["driver_opts"].items()}


def finish(project: Project, profiles: list[str]) -> None:
    model = project.model
    if "version" in model:
        files = ", ".join(project.config_files)
        sys.stderr.write(f"WARN[0000] {files}: the attribute `version` is obsolete, it will be "
                         "ignored, please remove it to avoid potential confusion \n")
        del model["version"]
    model["name"] = project.name
    services = model.setdefault("services", {})
    for name in list(services):
        if not _active(services[name], profiles):
            project.disabled[name] = services.pop(name)
    for svc in services.values():
        _environment(svc, project.environment)
        _build_args(svc, project.environment)
        _implicit_dependencies(svc)
        if svc.get("pull_policy") == "if_not_present":
            svc["pull_policy"] = "missing"
        if "network_mode" not in svc and not svc.get("networks"):
            svc["networks"] = {"default": None}
    used = {net for svc in services.values() for net in (svc.get("networks") or {})}
    if "default" in used:
        model.setdefault("networks", {}).setdefault("default", {})
    for section in ("networks", "volumes", "secrets", "configs"):
        _external(model.get(section) or {})
    for section in ("networks", "volumes", "secrets", "configs"):
        if section in model:
            _names(model[section], project.name)
    for section in ("secrets", "configs"):
        for entry in (model.get(section) or {}).values():
            if "file" in entry:
                entry["file"] = os.path.normpath(os.path.join(
                    project.working_dir, os.path.expanduser(entry["file"])))
    _check(project)
    order = model_order(model)
    project.model = {k: model[k] for k in order if k in model}


def model_order(model: dict[str, Any]) -> list[str]:
    first = ["name", "services", "networks", "volumes", "secrets", "configs"]
    return first + sorted(k for k in model if k not in first)


def _check(project: Project) -> None:
    model = project.model
    services = model["services"]
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            raise ComposeError(f'service "{name}" has neither an image nor a build context '
                               f"specified: {INVALID}")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services and cond.get("required", True):
                raise ComposeError(f'service "{name}" depends on undefined service "{dep}": '
                                   f"{INVALID}")
        for net in svc.get("networks") or {}:
            if net not in (model.get("networks") or {}):
                raise ComposeError(f'service "{name}" refers to undefined network {net}: '
                                   f"{INVALID}")
        for vol in svc.get("volumes") or ():
            if vol.get("type") == "volume" and vol.get("source") \
                    and vol["source"] not in (model.get("volumes") or {}):
                raise ComposeError(f'service "{name}" refers to undefined volume '
                                   f'{vol["source"]}: {INVALID}')
        for section in ("secrets", "configs"):
            for ref in svc.get(section) or ():
                if ref["source"] not in (model.get(section) or {}):
                    raise ComposeError(f'service "{name}" refers to undefined '
                                       f'{section[:-1]} {ref["source"]}: {INVALID}')
    dependency_order(services)


def dependencies(service: dict[str, Any]) -> list[str]:
    """depends_on, the implicit dependencies included (`_implicit_dependencies`)."""
    return list(service.get("depends_on") or ())


def dependency_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Services with their dependencies first; a cycle is compose-go's error."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):]
            raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in sorted(dependencies(services[name])):
            if dep in services:
                visit(dep, [*path, dep])
        state[name] = 2
        order.append(name)

    for name in sorted(services):
        visit(name, [name])
    return order
