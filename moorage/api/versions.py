"""Engine API versions this daemon speaks (shared/contracts: 1.41 up to 1.55)."""

from __future__ import annotations

MIN_VERSION = "1.41"
MAX_VERSION = "1.55"


# docker-compose 1.x (with docker-py 5, made for API 1.41) takes the server's newest version
# and then reads what API 1.45 removed: image inspect's ContainerConfig, on every recreate
# and scale (`KeyError: 'ContainerConfig'`, docker/compose#11742, the same with dockerd 26+).
# It is answered as the reference dockerd 20.10 answers it; every other client gets the
# version it asks for.
_CAPPED_CLIENTS = (("docker-compose/1.", "1.41"),)


def for_client(version: str, user_agent: str) -> str:
    """The version a request is answered as: `version`, or lower for a client known to
    need an older one whatever it negotiates."""
    for prefix, newest in _CAPPED_CLIENTS:
        if user_agent.startswith(prefix) and parse(version) > parse(newest):
            return newest
    return version


def parse(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def at_least(version: str, wanted: str) -> bool:
    return parse(version) >= parse(wanted)
