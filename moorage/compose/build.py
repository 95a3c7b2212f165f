"""`build`: the service's context to the classic builder's API (POST /build, which both
dockerd 20.10 and moord serve; moord's kept contexts when it has them), with compose's
image name."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from moorage.client import contextsync
from moorage.client.errors import APIError
from moorage.client.tarbody import ContextError
from moorage.compose.errors import ComposeError
from moorage.compose.progress import event, write

if TYPE_CHECKING:
    from moorage.client.api import Client
    from moorage.compose.loader import Project

INLINE_NAME = ".moor-compose.Dockerfile"


def image_name(project: Project, name: str) -> str:
    return str(project.services[name].get("image") or f"{project.name}-{name}")


def build(client: Client, project: Project, name: str) -> str:
    """Build one service's image; its id. A failure names the service."""
    spec: dict[str, Any] = project.services[name]["build"]
    if "://" in spec["context"]:
        raise ComposeError(f"service {name!r}: remote build contexts are not supported by "
                           "moor compose yet")
    for key in spec:
        if key not in ("context", "dockerfile", "dockerfile_inline", "args", "target",
                       "cache_from", "labels", "network", "extra_hosts", "shm_size", "pull",
                       "no_cache"):
            raise ComposeError(f"services.{name}.build.{key}: not supported by moor compose "
                               "yet")
    inline = spec.get("dockerfile_inline")
    tag = image_name(project, name)
    params: dict[str, Any] = {
        "t": tag, "dockerfile": INLINE_NAME if inline is not None else spec["dockerfile"],
        "rm": True, "forcerm": True, "pull": spec.get("pull"), "nocache": spec.get("no_cache"),
        "target": spec.get("target"), "networkmode": spec.get("network"),
        "buildargs": json.dumps({k: v for k, v in (spec.get("args") or {}).items()
                                 if v is not None}),
        "cachefrom": json.dumps(spec.get("cache_from") or []),
        "labels": json.dumps(spec.get("labels") or {}),
    }
    if spec.get("extra_hosts"):
        params["extrahosts"] = [f"{h}:{ip}" for h, ip in spec["extra_hosts"].items()]
    event(f"Service {name}", "Building")
    if not os.path.isdir(spec["context"]):
        raise ComposeError(f"unable to prepare context: path {spec['context']!r} not found")
    built = ""
    try:
        for message in contextsync.build(client, params, spec["context"], params["dockerfile"],
                                         None if inline is None else inline.encode()):
            if message.get("error"):
                raise ComposeError(f"Service '{name}' failed to build : "
                                   f"{message['error'].strip()}")
            if message.get("stream"):
                write(message["stream"])
            if (message.get("aux") or {}).get("ID"):
                built = message["aux"]["ID"]
    except (APIError, ContextError) as err:
        raise ComposeError(f"Service '{name}' failed to build : {err}") from None
    event(f"Service {name}", "Built")
    return built or str(client.get(f"/images/{tag}/json")["Id"])
