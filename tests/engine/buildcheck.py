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
# checksum of regular files: two finds whose -exec batches the names (a process per file
# made the listing cost seconds an image).
_PRUNED = ("\\( -path /proc -o -path /sys -o -path /dev -o -path /etc/hosts "
           "-o -path /etc/hostname -o -path /etc/mtab -o -path /etc/resolv.conf "
           "-o -path /.dockerenv \\) -prune -o")
LISTING = (f"find / -xdev {_PRUNED} -exec stat -c '%F|%a|%u:%g|%s|%N' {{}} + && echo && "
            f"find / -xdev {_PRUNED} -type f -exec md5sum {{}} +")


def listing(output: bytes) -> list[str]:
    """LISTING's output as one sorted line a path: a link's target and owner; a regular
    file's mode, owner, size and checksum; anything else's type, mode and owner."""
    stats, sums = output.decode().split("\n\n", 1)
    checksum = {line[34:]: line[:32] for line in sums.splitlines()}
    lines = []
    for line in stats.splitlines():
        kind, mode, owner, size, name = line.split("|", 4)
        if kind == "symbolic link":
            lines.append(f"{name} {owner}")
        elif kind.startswith("regular"):
            lines.append(f"{name} {mode} {owner} {size} {checksum[name]}")
        else:
            lines.append(f"{name} {kind} {mode} {owner}")
    return sorted(lines)


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
