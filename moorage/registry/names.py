"""Repository names, tags and digests as the distribution spec defines them.

distribution-spec "Pulling manifests": ``<name>`` matches
``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*`` and
``<reference>`` is a tag ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`` or a digest. The
name grammar is reference.go's remote-name, which moorage.image.reference ports.
Because no component may start with ``_`` or be ``.``/``..``, a valid name is a
safe relative path, and the storage's ``_manifests``-style directories never
collide with a nested repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moorage.errors import InvalidParameter
from moorage.image.reference import _REMOTE_NAME, _TAG, NAME_TOTAL_LENGTH_MAX, parse_digest
from moorage.registry.errors import RegistryError

_NAME_RE = re.compile(_REMOTE_NAME, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated ``algorithm:hex`` digest (sha256, sha384 or sha512)."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def validate_name(name: str) -> str:
    """The repository name, or NAME_INVALID (bad grammar, uppercase, ``..``, too long)."""
    if len(name) > NAME_TOTAL_LENGTH_MAX or not _NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def is_tag(reference: str) -> bool:
    return _TAG_RE.fullmatch(reference) is not None


def parse_digest_str(value: str) -> Digest:
    """A digest from a URL or a descriptor, or DIGEST_INVALID with go-digest's reason."""
    try:
        parse_digest(value)
    except InvalidParameter as err:
        raise RegistryError("DIGEST_INVALID", str(err), detail={"digest": value}) from None
    algorithm, _, encoded = value.partition(":")
    return Digest(algorithm, encoded)

