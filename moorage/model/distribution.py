"""Registry requests and results: credentials, pull, push, distribution inspect."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Engine API AuthConfig: X-Registry-Auth on pull and push, the body of /auth."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""


@dataclass(frozen=True, slots=True)
class PullRequest:
    from_image: str
    tag: str
    platform: str
    auth: AuthConfig


@dataclass(frozen=True, slots=True)
class PushRequest:
    name: str
    tag: str
    auth: AuthConfig


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""


@dataclass(frozen=True, slots=True)
class DistributionInspect:
    """GET /distribution/{name}/json: the descriptor the reference resolves to."""

    media_type: str
    digest: str
    size: int
    platforms: tuple[Platform, ...]
