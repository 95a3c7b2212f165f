"""The API version a request is answered as."""

from __future__ import annotations

from moorage.api.versions import MAX_VERSION, for_client

COMPOSE_1 = "docker-compose/1.29.2 docker-py/5.0.3 Linux/6.1.0"


def test_docker_compose_1_is_answered_as_api_1_41_whatever_it_negotiates() -> None:
    assert for_client(MAX_VERSION, COMPOSE_1) == "1.41"
    assert for_client("1.41", COMPOSE_1) == "1.41"


def test_other_clients_get_the_version_they_ask_for() -> None:
    for agent in ("Docker-Client/28.2.2 (linux)", "docker-sdk-python/5.0.3",
                  "docker-compose/2.29.1", ""):
        assert for_client(MAX_VERSION, agent) == MAX_VERSION
        assert for_client("1.44", agent) == "1.44"
