"""OCI hooks (runtime-spec config.md "POSIX-platform Hooks"): state on stdin, timeout, errors."""

from __future__ import annotations

import os
import subprocess

from moorage import json_codec
from moorage.errors import SystemFailure


def run_hooks(hooks: list[dict], name: str, state: dict) -> None:
    payload = json_codec.dumps(state).encode()
    for hook in hooks:
        run_hook(hook, name, payload)


def run_hook(hook: dict, name: str, payload: bytes) -> None:
    args = hook.get("args") or [hook["path"]]
    env = dict(item.partition("=")[::2] for item in hook.get("env") or [])
    try:
        proc = subprocess.run(args, executable=hook["path"], input=payload, env=env,
                              capture_output=True, timeout=hook.get("timeout"), check=False)
    except subprocess.TimeoutExpired:
        raise SystemFailure(f"{name} hook {hook['path']}: timed out after "
                          f"{hook['timeout']}s") from None
    except OSError as err:
        raise SystemFailure(f"{name} hook {hook['path']}: {os.strerror(err.errno or 0)}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise SystemFailure(f"{name} hook {hook['path']} failed with status {proc.returncode}"
                          + (f": {detail[-1]}" if detail else ""))
