"""The com.docker.compose.* labels Compose v2 sets, so either tool sees the other's objects."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PREFIX = "com.docker.compose."
PROJECT = PREFIX + "project"
SERVICE = PREFIX + "service"
NUMBER = PREFIX + "container-number"
ONEOFF = PREFIX + "oneoff"
HASH = PREFIX + "config-hash"
VERSION = PREFIX + "version"
NETWORK = PREFIX + "network"
VOLUME = PREFIX + "volume"
COMPOSE_VERSION = "2.24.0"


def config_hash(service: dict[str, Any]) -> str:
    """What decides a recreate: the service's config, without what only scales it."""
    relevant = {k: v for k, v in service.items()
                if k not in ("scale", "deploy", "depends_on", "profiles", "build")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def for_container(project: Any, name: str, service: dict[str, Any], number: int,
                  oneoff: bool, image_id: str) -> dict[str, str]:
    depends = ",".join(f"{dep}:{c['condition']}:{str(c.get('restart', False)).lower()}"
                       for dep, c in (service.get("depends_on") or {}).items())
    return {
        PROJECT: project.name,
        SERVICE: name,
        NUMBER: str(number),
        ONEOFF: "True" if oneoff else "False",
        HASH: config_hash(service),
        VERSION: COMPOSE_VERSION,
        PREFIX + "image": image_id,
        PREFIX + "depends_on": depends,
        PREFIX + "project.working_dir": project.working_dir,
        PREFIX + "project.config_files": ",".join(project.config_files),
    }


def for_resource(project: str, kind: str, key: str) -> dict[str, str]:
    return {PROJECT: project, PREFIX + kind: key, VERSION: COMPOSE_VERSION}


def project_filter(project: str, *more: str) -> dict[str, list[str]]:
    return {"label": [f"{PROJECT}={project}", *more]}
