"""Build OCI bundles from Debian's ``busybox-static``.

Imported by the test suite, the demo and the benchmarks; of the runtime it
takes only the default spec, which has no imports of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from moorage.runtime.spec import default_spec

BUSYBOX = "/usr/bin/busybox"

# Root, nobody and an unprivileged user the tests can switch to by name or number.
_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"

def _applets() -> list[str]:
    """Applet paths relative to /, e.g. ``bin/sh``, as this busybox build installs them."""
    out = subprocess.run(
        [BUSYBOX, "--list-full"], check=True, capture_output=True, text=True
    ).stdout
    # --list-full names "bin/busybox" too; linking it would replace the binary.
    return [line for line in out.split() if line and line != "bin/busybox"]


def build_rootfs(dest: str) -> None:
    """Create a minimal busybox root filesystem at ``dest`` (created if missing)."""
    os.makedirs(dest, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "etc", "root",
              "home/app", "var", "run"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    tmp = os.path.join(dest, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o1777)
    os.chmod(os.path.join(dest, "root"), 0o700)
    os.chown(os.path.join(dest, "home/app"), 1000, 1000)
    shutil.copy2(BUSYBOX, os.path.join(dest, "bin/busybox"))
    for rel in _applets():
        link = os.path.join(dest, rel)
        if not os.path.lexists(link):
            os.symlink("/bin/busybox", link)
    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write(_PASSWD)
    with open(os.path.join(dest, "etc/group"), "w") as f:
        f.write(_GROUP)


def image_tar(dest: str) -> bytes:
    """A busybox root filesystem built at ``dest``, as the tar `docker import` takes."""
    build_rootfs(dest)
    return subprocess.run(["tar", "-C", dest, "-c", "."], capture_output=True,
                          check=True).stdout


def default_config(args: list[str], *, terminal: bool = False) -> dict[str, Any]:
    """`moor-runtime spec`'s document (runc's) with ``args`` and ``terminal`` replaced.

    tests/runtime/test_devkit.py keeps it equal to the installed runc's, so the
    differential tests start from the document runc users start from.
    """
    return default_spec(args, terminal=terminal)


def make_bundle(bundle_dir: str, config: dict[str, Any], rootfs: str | None = None) -> str:
    """Write ``config.json`` into ``bundle_dir`` and give it a rootfs; return ``bundle_dir``.

    With ``rootfs`` the tree is copied (``cp -a``: a fork of a 2 MB tree is cheaper
    than a fresh build and keeps each bundle private, so tests may write into it);
    without it one is built. The rootfs goes where ``config["root"]["path"]`` points
    when that is relative, as runtimes resolve it against the bundle.
    """
    os.makedirs(bundle_dir, exist_ok=True)
    root_path = config.get("root", {}).get("path", "rootfs")
    target = root_path if os.path.isabs(root_path) else os.path.join(bundle_dir, root_path)
    if not os.path.exists(target):
        if rootfs is None:
            build_rootfs(target)
        else:
            subprocess.run(["cp", "-a", rootfs, target], check=True)
    with open(os.path.join(bundle_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return bundle_dir
