"""Image configs (image-spec config.md, Docker's image JSON) and layer chain IDs."""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

from moorage import timefmt
from moorage.errors import InvalidParameter

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}

# The container-config keys Docker writes with their zero values. Docker's image
# JSON always carries all of them (Go structs without omitempty), and clients
# such as the docker CLI's inspect templates expect them to be present.
_CONTAINER_CONFIG_ZERO: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def host_architecture() -> str:
    machine = platform.machine()
    return GO_ARCH.get(machine, machine)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def chain_id_of(parent: str | None, diff_id: str) -> str:
    """image-spec config.md "Layer ChainID": ChainID(L0) = DiffID(L0), and
    ChainID(L0|…|Ln) = Digest(ChainID(L0|…|Ln-1) + " " + DiffID(Ln))."""
    if parent is None:
        return diff_id
    return digest_of(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: list[str]) -> list[str]:
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(chain_id_of(chains[-1] if chains else None, diff_id))
    return chains


def now_rfc3339() -> str:
    """Go's time.RFC3339Nano in UTC, as Docker writes "created"."""
    return timefmt.now()


def parse_time(value: str) -> float:
    """An RFC 3339 timestamp as a UNIX time; 0 when empty or bad (a config's "created"
    is informative: a malformed one must not make the image unusable)."""
    try:
        return timefmt.parse_ns(value) / 1e9
    except ValueError:
        return 0.0


def container_config(section: dict[str, Any] | None) -> dict[str, Any]:
    """A container-config section with Docker's zero values filled in."""
    return {**_CONTAINER_CONFIG_ZERO, **(section or {})}


def encode(document: dict[str, Any]) -> bytes:
    """Compact JSON, the bytes stored for a config or manifest we create (their digest)."""
    return json.dumps(document, separators=(",", ":")).encode()


def parse_object(data: bytes, problem: str) -> dict[str, Any]:
    """A JSON object, or InvalidParameter("<problem>: <why>")."""
    try:
        document = json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"{problem}: {e}") from None
    if not isinstance(document, dict):
        raise InvalidParameter(f"{problem}: not a JSON object")
    return document


def decode(data: bytes, what: str) -> dict[str, Any]:
    """Parse and sanity-check an image config (image-spec config.md required fields)."""
    config = parse_object(data, f"{what}: invalid image config")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidParameter(f"{what}: invalid image config: rootfs.type must be layers")
    diff_ids = rootfs.get("diff_ids")
    if diff_ids is None:
        diff_ids = rootfs["diff_ids"] = []
    if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and d.startswith("sha256:") and len(d) == 71 for d in diff_ids):
        raise InvalidParameter(f"{what}: invalid image config: bad rootfs.diff_ids")
    for key in ("config", "container_config"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise InvalidParameter(f"{what}: invalid image config: {key} is not an object")
    return config


def diff_ids(config: dict[str, Any]) -> list[str]:
    return list(config["rootfs"]["diff_ids"])


def new_import_config(diff_id: str, settings: dict[str, Any], comment: str) -> dict[str, Any]:
    """The config ``docker import`` writes (moby daemon/images/image_import.go)."""
    created = now_rfc3339()
    return {
        "architecture": host_architecture(),
        "comment": comment,
        "config": container_config(settings),
        "container_config": container_config(None),
        "created": created,
        "history": [{"created": created, "comment": comment}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
