"""moor-init, the --init process: built once from data/moor-init.c."""

from __future__ import annotations

import os
import subprocess
import tempfile

from moorage.errors import SystemFailure


def init_binary(data_root: str) -> str:
    """Compiled static (the container's rootfs has no libc of ours, and gcc is a build
    dependency of the engine, not of images); a unique temporary name and a rename keep
    two first starts from racing."""
    path = os.path.join(data_root, "bin", "moor-init")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    source = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "moor-init.c")
    fd, tmp = tempfile.mkstemp(prefix="moor-init.", dir=os.path.dirname(path))
    os.close(fd)
    try:
        done = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", tmp, source],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemFailure(f"building moor-init: {done.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
