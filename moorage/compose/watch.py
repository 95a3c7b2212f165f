"""`watch`: develop.watch rules (sync, rebuild, sync+restart) by polling the watched paths,
applied through the archive, exec and build APIs."""

from __future__ import annotations

import fnmatch
import io
import os
import tarfile
import time
from typing import TYPE_CHECKING, Any

from moorage.compose.errors import ComposeError
from moorage.compose.progress import say

if TYPE_CHECKING:
    from moorage.client.api import Client
    from moorage.compose.loader import Project

_ACTIONS = ("sync", "rebuild", "sync+restart")


def rules(project: Project, services: list[str]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in services or list(project.services):
        for rule in ((project.services[name].get("develop") or {}).get("watch") or ()):
            if rule["action"] not in _ACTIONS:
                raise ComposeError(f"services.{name}.develop.watch: action {rule['action']} "
                                   "is not supported by moor compose yet")
            if rule["action"] != "rebuild" and not rule.get("target"):
                raise ComposeError(f"services.{name}.develop.watch: target is required for "
                                   f"non-rebuild actions")
            found.append((name, {**rule, "path": os.path.join(project.working_dir,
                                                               rule["path"])}))
    if not found:
        raise ComposeError("none of the selected services is configured for watch, consider "
                           "setting a 'develop' section")
    return found


def _scan(rule: dict[str, Any]) -> dict[str, float]:
    root = rule["path"]
    ignore = rule.get("ignore") or ()
    if os.path.isfile(root):
        return {root: os.stat(root).st_mtime_ns}
    out = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(base, name)
            relative = os.path.relpath(full, root)
            if any(fnmatch.fnmatch(relative, p) or relative.startswith(p.rstrip("/") + "/")
                   for p in ignore):
                continue
            try:
                out[full] = os.stat(full).st_mtime_ns
            except FileNotFoundError:
                continue
    return out


def _target(rule: dict[str, Any], path: str) -> str:
    if path == rule["path"]:  # a watched file, not a folder
        return str(rule["target"])
    return os.path.join(rule["target"], os.path.relpath(path, rule["path"]))


def _sync(client: Client, cid: str, rule: dict[str, Any], changed: list[str]) -> None:
    gone = [_target(rule, p) for p in changed if not os.path.exists(p)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in changed:
            if os.path.exists(path):
                tar.add(path, _target(rule, path).lstrip("/"), recursive=False)
    client.call("PUT", f"/containers/{cid}/archive", {"path": "/"}, data=buffer.getvalue(),
                headers={"Content-Type": "application/x-tar"})
    if gone:
        exec_id = client.post(f"/containers/{cid}/exec", body={"Cmd": ["rm", "-rf", *gone]})
        client.post(f"/exec/{exec_id['Id']}/start", body={"Detach": True})


def watch(client: Client, project: Project, watched: list[tuple[str, dict[str, Any]]],
          interval: float = 0.3) -> None:
    """Poll forever (until Ctrl+C): `watched` is what rules() found."""
    from moorage.compose import ops

    seen = [_scan(rule) for _, rule in watched]
    say("Watch enabled")
    while True:
        time.sleep(interval)
        for i, (name, rule) in enumerate(watched):
            now = _scan(rule)
            changed = sorted({p for p in now if seen[i].get(p) != now[p]} | (set(seen[i])
                                                                            - set(now)))
            seen[i] = now
            if not changed:
                continue
            if rule["action"] == "rebuild":
                say(f"Rebuilding service \"{name}\" after changes were detected...")
                ops.up(client, project, [name], build=True)
                continue
            say(f"Syncing service \"{name}\" after {len(changed)} changes were detected")
            for c in ops.containers(client, project.name, name, all=False):
                _sync(client, c["Id"], rule, changed)
                if rule["action"] == "sync+restart":
                    client.post(f"/containers/{c['Id']}/restart")
                    say(f"Restarting {c['Names'][0].lstrip('/')}")
