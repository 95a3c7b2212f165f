"""From files to the project model: discovery, .env, YAML, interpolation, schema,
include, extends, merge of -f files, profiles and the final checks (compose-go's order)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moorage.compose import dotenv, forms, schema
from moorage.compose.errors import ComposeError
from moorage.compose.interpolate import interpolate
from moorage.compose.merge import (
    Override,
    Reset,
    apply_markers,
    merge_mappings,
    merge_models,
    strip_markers,
)

CANDIDATES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_BAD_NAME = re.compile(r"[^a-z0-9_-]")


@dataclass
class Options:
    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_dir: str | None = None
    env_files: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class Project:
    name: str
    working_dir: str
    config_files: list[str]
    model: dict[str, Any]
    environment: dict[str, str]
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.model.get("services", {})
        return services


def find_files(opts: Options) -> list[str]:
    files = list(opts.files)
    if not files and opts.environ.get("COMPOSE_FILE"):
        sep = opts.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        files = opts.environ["COMPOSE_FILE"].split(sep)
    if files:
        base = opts.project_dir or os.getcwd()
        return [f if f == "-" else os.path.abspath(os.path.join(base, f)) for f in files]
    here = os.path.abspath(opts.project_dir or os.getcwd())
    while True:
        for name in CANDIDATES:
            path = os.path.join(here, name)
            if os.path.isfile(path):
                override = os.path.join(here, name.replace(".y", ".override.y"))
                return [path, override] if os.path.isfile(override) else [path]
        parent = os.path.dirname(here)
        if parent == here:
            raise ComposeError("no configuration file provided: not found")
        here = parent


_GO_YAML = {"mapping values are not allowed here": "mapping values are not allowed in this "
                                                   "context"}


def _loader() -> Any:
    """PyYAML's safe loader plus the merge tags of the spec: `!reset` and `!override`."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def reset(loader: Any, node: Any) -> Reset:
        return Reset()

    def override(loader: Any, node: Any) -> Override:
        if isinstance(node, yaml.MappingNode):
            return Override(loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return Override(loader.construct_sequence(node, deep=True))
        return Override(loader.construct_scalar(node))
    Loader.add_constructor("!reset", reset)
    Loader.add_constructor("!override", override)
    return Loader


Lines = dict[tuple[str, ...], int]


def read_yaml(path: str) -> tuple[Any, Lines]:
    """The document and, for error messages, the line of every key and list item (by path).

    One parse: PyYAML composes the nodes (which keep their marks), then constructs the
    document from them."""
    import yaml

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except FileNotFoundError:
        raise ComposeError(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise ComposeError(f"read {path}: is a directory") from None
    loader = _loader()(text)  # a SafeLoader, plus two tags
    try:
        node = loader.get_single_node()
        lines: Lines = {}
        _key_lines(node, (), lines)
        return (loader.construct_document(node) if node is not None else None), lines
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problem = str(err.problem or err.context)
        raise ComposeError(f"parsing {path}: yaml: line {line}: "
                           f"{_GO_YAML.get(problem, problem)}") from None
    except yaml.YAMLError as err:
        raise ComposeError(f"parsing {path}: yaml: {err}") from None
    finally:
        loader.dispose()


def _key_lines(node: Any, path: tuple[str, ...], lines: Lines) -> None:
    import yaml

    if len(path) > 64:  # an alias to its own anchor (a: &x [*x]) would never end
        return
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), k, v) for k, v in node.value
                    if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(i), v, v) for i, v in enumerate(node.value)]
    else:
        return
    for key, marked, value in children:
        lines[(*path, key)] = marked.start_mark.line + 1
        _key_lines(value, (*path, key), lines)


def locator(path: str, lines: Lines) -> Callable[[tuple[str, ...]], str]:
    """`file:line` of a key path: the key's own line, else its nearest ancestor's (a key
    that is missing, or that came from a merge key `<<`)."""
    def where(keys: tuple[str, ...]) -> str:
        while keys and keys not in lines:
            keys = keys[:-1]
        return f"{path}:{lines[keys]}" if keys else path
    return where


def _environment(opts: Options, project_dir: str) -> dict[str, str]:
    """The variables interpolation sees: the .env file (or --env-file), then the process's
    environment, which wins."""
    env_files = opts.env_files or [os.path.join(project_dir, ".env")]
    found: dict[str, str] = {}
    for path in env_files:
        if not opts.env_files and not os.path.isfile(path):
            continue
        if os.path.isdir(path):
            raise ComposeError(f"{path} is a directory")
        for k, v in dotenv.read(path, {**found, **opts.environ}).items():
            if v is not None:
                found[k] = v
    return {**found, **opts.environ}


def _load_file(path: str, env: dict[str, str], base_dir: str,
               markers: list[tuple[str, tuple[str, ...]]] | None = None,
               document: tuple[Any, Lines] | None = None) -> dict[str, Any]:
    raw, lines = document or read_yaml(path)
    if raw is None:
        raise ComposeError(f"empty compose file: {path}" if path != "-" else "empty compose file")
    if not isinstance(raw, dict):
        raise ComposeError(f"validating {path}: top-level object must be a mapping")
    raw, found = strip_markers(raw)
    if markers is not None:
        markers += found
    where = locator(path, lines)
    raw = interpolate(raw, env, where=where)
    schema.validate(raw, where)
    model = dict(raw)
    model["services"] = {name: forms.service(svc or {}, base_dir)
                         for name, svc in (raw.get("services") or {}).items()}
    for section in ("networks", "volumes", "secrets", "configs"):
        if section in model:
            model[section] = {k: dict(v or {}) for k, v in (model[section] or {}).items()}
    return model


def _extends(model: dict[str, Any], path: str, env: dict[str, str], base_dir: str) -> None:
    services = model["services"]
    done: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return done[name]
        if name in chain:
            raise ComposeError(f"Circular reference with extends: {' -> '.join([*chain, name])}")
        svc = services[name]
        ext = svc.get("extends")
        if not ext:
            done[name] = svc
            return svc
        parent_name = ext["service"]
        if "file" in ext:
            other_path = os.path.join(base_dir, ext["file"])
            other = _load_file(other_path, env, os.path.dirname(other_path))
            _extends(other, other_path, env, os.path.dirname(other_path))
            if parent_name not in other["services"]:
                raise ComposeError(f"cannot extend service {name!r} in {path}: service "
                                   f"{parent_name!r} not found in {other_path}")
            parent = other["services"][parent_name]
        else:
            if parent_name not in services:
                raise ComposeError(f"cannot extend service {name!r} in {path}: service "
                                   f"{parent_name!r} not found")
            parent = resolve(parent_name, (*chain, name))
        parent = {k: v for k, v in parent.items() if k not in ("depends_on",)}
        merged = merge_mappings(parent, {k: v for k, v in svc.items() if k != "extends"})
        done[name] = merged
        return merged

    for name in list(services):
        services[name] = resolve(name, ())


def _include(model: dict[str, Any], opts: Options, base_dir: str,
             env: dict[str, str]) -> dict[str, Any]:
    for entry in model.pop("include", None) or ():
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        paths = [os.path.join(base_dir, p) for p in paths]
        sub_dir = os.path.join(base_dir, entry.get("project_directory")
                               or os.path.dirname(paths[0]))
        sub_env_files = [os.path.join(base_dir, e) for e in (
            entry.get("env_file") if isinstance(entry.get("env_file"), list)
            else [entry["env_file"]] if entry.get("env_file") else [])]
        sub = _merged(Options(files=paths, env_files=sub_env_files, environ=opts.environ),
                      paths, sub_dir)[0]
        for section in ("services", "networks", "volumes", "secrets", "configs"):
            for name, value in (sub.get(section) or {}).items():
                mine = model.setdefault(section, {})
                if name in mine and mine[name] != value:
                    raise ComposeError(f"imported compose file {paths[0]} defines conflicting "
                                       f"{section[:-1]} {name}")
                mine[name] = value
    return model


def _merged(opts: Options, files: list[str], project_dir: str
            ) -> tuple[dict[str, Any], dict[str, str]]:
    env = _environment(opts, project_dir)
    documents = {path: read_yaml(path) for path in files}
    # As in compose-go, the files see the project's name as ${COMPOSE_PROJECT_NAME}.
    declared = [raw["name"] for raw, _ in documents.values()
                if isinstance(raw, dict) and isinstance(raw.get("name"), str)]
    named = {"name": interpolate(declared[-1], env)} if declared else {}
    env["COMPOSE_PROJECT_NAME"] = project_name(opts, named, project_dir, env)
    model: dict[str, Any] = {}
    for path in files:
        base_dir = project_dir if path == "-" else os.path.dirname(path)
        markers: list[tuple[str, tuple[str, ...]]] = []
        loaded = _load_file(path, env, project_dir if model else base_dir, markers,
                            documents[path])
        loaded = _include(loaded, opts, base_dir, env)
        _extends(loaded, path, env, base_dir)
        model = apply_markers(merge_models(model, loaded), loaded, markers) if model \
            else loaded
    return model, env


def project_name(opts: Options, model: dict[str, Any], project_dir: str,
                 env: dict[str, str]) -> str:
    explicit = opts.project_name or env.get("COMPOSE_PROJECT_NAME") or model.get("name")
    if explicit:
        if _BAD_NAME.search(explicit) or not explicit[:1].isalnum():
            raise ComposeError(f'invalid project name "{explicit}": must consist only of '
                               "lowercase alphanumeric characters, hyphens, and underscores "
                               "as well as start with a letter or number")
        return str(explicit)
    name = _BAD_NAME.sub("", os.path.basename(os.path.abspath(project_dir)).lower())
    return name.lstrip("-_") or "default"


def load(opts: Options) -> Project:
    files = find_files(opts)
    project_dir = os.path.abspath(opts.project_dir or (
        os.path.dirname(files[0]) if files[0] != "-" else os.getcwd()))
    model, env = _merged(opts, files, project_dir)
    name = project_name(opts, model, project_dir, env)
    from moorage.compose.normalize import finish

    profiles = opts.profiles or [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]
    project = Project(name, project_dir, files, model, env)
    finish(project, profiles)
    return project
