"""Docker image references: parsing and normalisation.

A port of github.com/distribution/reference (``reference.go``, ``normalize.go``,
``regexp.go``) and of the digest validation of github.com/opencontainers/go-digest,
with the same grammar and the same error messages, because the docker CLI and SDK
show the daemon's message to the user verbatim::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] remote-name
    tag       := /[\\w][\\w.-]{0,127}/
    digest    := algorithm ":" encoded

Only ``parse_normalized`` and ``parse_docker_ref`` are entry points; a
``Reference`` built by hand is not validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from moorage.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
# The Docker Index's old name; normalize.go folds it into docker.io.
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# reference.go checks this against the path (the name without its domain).
NAME_TOTAL_LENGTH_MAX = 255

# regexp.go, translated. Go's RE2 `\w` is ASCII-only, hence re.ASCII, and every
# pattern is used with fullmatch because Python's `$` also matches before a
# trailing newline.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")

# go-digest's algorithms and the hex length of each (algorithm.go). Docker links
# crypto/sha512, so sha384 and sha512 are available there too.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# The errors of reference.go and go-digest's digest.go, word for word.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_DIGEST_INVALID_FORMAT = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised, named reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository's full name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as the docker CLI shows it (normalize.go ``familiarizeName``)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        remainder = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        # Only a single-component "library/x" is shortened, as in normalize.go.
        if remainder != self.path and "/" not in remainder:
            return remainder
        return self.path

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar_string(self) -> str:
        """``FamiliarString``: ``busybox:latest``, ``user/app@sha256:…``."""
        return self.familiar_name + self._suffix()

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``:latest`` when there is neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest


def parse_normalized(s: str) -> Reference:
    """``ParseNormalizedNamed``: parse a familiar or full reference into its canonical form.

    ``busybox`` gives ``docker.io/library/busybox`` (no tag is added; see
    ``parse_docker_ref``). Raises ``InvalidParameter`` with Docker's message.
    """
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidParameter(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(s)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidParameter(
            f"{ERR_REFERENCE_INVALID_FORMAT}: repository name ({remote}) must be lowercase"
        )
    return _parse(f"{domain}/{remainder}")


def parse_docker_ref(s: str) -> Reference:
    """``ParseDockerRef``: normalise, then keep either the tag or the digest.

    A reference with both keeps only the digest (the digest pins the content;
    the tag would be ignored anyway); one with neither gets ``:latest``.
    """
    ref = parse_normalized(s)
    if ref.tag is not None and ref.digest is not None:
        return replace(ref, tag=None)
    return ref.with_default_tag()


def parse_digest(s: str) -> str:
    """Validate a digest like go-digest's ``Digest.Validate``; returns it unchanged."""
    algorithm, sep, encoded = s.partition(":")
    if not sep or not encoded:
        raise InvalidParameter(ERR_DIGEST_INVALID_FORMAT)
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        if not _GO_DIGEST_RE.fullmatch(s):
            raise InvalidParameter(ERR_DIGEST_INVALID_FORMAT)
        raise InvalidParameter(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != length:
        raise InvalidParameter(ERR_DIGEST_INVALID_LENGTH)
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidParameter(ERR_DIGEST_INVALID_FORMAT)
    return s


def _split_docker_domain(name: str) -> tuple[str, str]:
    """normalize.go ``splitDockerDomain``: tell a registry host from a Hub namespace."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        # A single element is always a Docker Hub official image, even
        # "localhost" or "example.com" (a known quirk kept for compatibility).
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif (
        maybe_domain == "localhost"
        or "." in maybe_domain
        or ":" in maybe_domain
        # Hub namespaces are lowercase, so an uppercase first element is a host.
        or maybe_domain.lower() != maybe_domain
    ):
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse(s: str) -> Reference:
    """reference.go ``Parse`` of an already domain-qualified string."""
    match = _REFERENCE_RE.fullmatch(s)
    if match is None:
        lowered = s.lower()
        if lowered != s and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidParameter(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidParameter(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = match.groups()
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    assert name_match is not None  # a sub-pattern of _REFERENCE_RE that matched
    # The domain can still be empty: "foo_bar.com/x" is not a valid host, so Go
    # parses the whole name as a path, and so do we.
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(ERR_NAME_TOO_LONG)
    if digest is not None:
        parse_digest(digest)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)
