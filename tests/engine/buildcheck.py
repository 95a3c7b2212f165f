"""What the build tests share: the config fields and the filesystem listing compared
between engines, and a Case's files written as a build context."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from build_corpus import Case

CONFIG_FIELDS = ["Config.Env", "Config.Cmd", "Config.Entrypoint", "Config.WorkingDir",
                 "Config.User", "Config.ExposedPorts", "Config.Volumes", "Config.Labels",
                 "Config.Healthcheck", "Config.StopSignal", "Config.Shell", "Config.OnBuild"]
# Every path but the kernel's and the engine's own mounts, with mode, owner, size and a
# checksum of regular files.
LISTING = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /etc/hosts "
           "-o -path /etc/hostname -o -path /etc/mtab -o -path /etc/resolv.conf "
           "-o -path /.dockerenv \\) -prune "
           "-o -print | sort | while read p; do if [ -L \"$p\" ]; then "
           "echo \"$p -> $(readlink \"$p\") $(stat -c '%u:%g' \"$p\")\"; "
           "elif [ -f \"$p\" ]; then echo \"$p $(stat -c '%a %u:%g %s' \"$p\") "
           "$(md5sum < \"$p\" | cut -c1-32)\"; else echo \"$p $(stat -c '%F %a %u:%g' \"$p\")\"; "
           "fi; done")


def write_context(root: Path, case: Case) -> None:
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):  # (target,) is a symlink
            path.symlink_to(content[0])
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for name, mode in case.modes.items():
        os.chmod(root / name, mode)
    (root / (case.dockerfile_name or "Dockerfile")).write_text(case.dockerfile)


@contextlib.contextmanager
def classic_builder() -> Iterator[None]:
    """The docker CLI 28 builds with dockerd's classic builder (the API's POST /build)."""
    previous = os.environ.get("DOCKER_BUILDKIT")
    os.environ["DOCKER_BUILDKIT"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DOCKER_BUILDKIT", None)
        else:
            os.environ["DOCKER_BUILDKIT"] = previous
