"""The registry client's bearer tokens: cached per realm, service, user and scopes, until
shortly before they expire, and fetched again after a registry refuses one (401)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
import pytest

from moorage.distribution import auth
from moorage.distribution.auth import Authorizer, Credentials, TokenCache
from moorage.distribution.client import Repository
from moorage.distribution.mirrors import Endpoint
from moorage.errors import Unauthorized
from moorage.protocol.challenge import Challenge

ANONYMOUS = Credentials()
BEARER = Challenge("bearer", (("realm", "https://auth.example/token"),
                              ("service", "registry.example")))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth.time, "monotonic", fake)
    return fake


class Reply:
    """Just what the client reads of an aiohttp response."""

    def __init__(self, status: int, body: object = None) -> None:
        self.status = status
        self.reason = "OK" if status == 200 else "Unauthorized"
        self.body = body

    async def json(self, content_type: str | None = None) -> object:
        return self.body

    def release(self) -> None:
        pass

    async def __aenter__(self) -> Reply:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


class TokenServer:
    """Hands out t1, t2, … with ``expires_in``; records what it was asked."""

    def __init__(self, expires_in: object = 300, status: int = 200) -> None:
        self.expires_in = expires_in
        self.status = status
        self.requests: list[dict[str, Any]] = []

    def _reply(self) -> Reply:
        if self.status != 200:
            return Reply(self.status, {"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "bad credentials"}]})
        return Reply(200, {"token": f"t{len(self.requests)}", "expires_in": self.expires_in})

    async def get(self, url: str, params: list[tuple[str, str]],
                  headers: dict[str, str], proxy: str | None = None) -> Reply:
        self.requests.append({"method": "GET", "url": url, "params": params,
                              "headers": headers})
        return self._reply()

    async def post(self, url: str, data: dict[str, str], proxy: str | None = None) -> Reply:
        self.requests.append({"method": "POST", "url": url, "data": data})
        return self._reply()


def authorizer(server: TokenServer, cache: TokenCache, *scopes: str,
               credentials: Credentials = ANONYMOUS) -> Authorizer:
    http = cast(aiohttp.ClientSession, server)
    return Authorizer(http, BEARER, credentials, scopes or ("repository:a:pull",), cache)


def header(a: Authorizer) -> str:
    return asyncio.run(a.headers())["Authorization"]


def test_tokens_are_cached_per_scope_and_user(clock: Clock) -> None:
    server, cache = TokenServer(), TokenCache()
    assert header(authorizer(server, cache, "repository:a:pull")) == "Bearer t1"
    assert header(authorizer(server, cache, "repository:a:pull")) == "Bearer t1"
    assert header(authorizer(server, cache, "repository:b:pull")) == "Bearer t2"
    assert header(authorizer(server, cache, "repository:a:pull,push")) == "Bearer t3"
    alice = Credentials("alice", "pw")
    assert header(authorizer(server, cache, credentials=alice)) == "Bearer t4"
    assert header(authorizer(server, cache, credentials=alice)) == "Bearer t4"
    first, fourth = server.requests[0], server.requests[3]
    assert first["params"] == [("service", "registry.example"), ("scope", "repository:a:pull")]
    assert "Authorization" not in first["headers"]  # anonymous
    assert fourth["headers"]["Authorization"].startswith("Basic ")


def test_expiry_refreshes_before_the_deadline(clock: Clock) -> None:
    server, cache = TokenServer(expires_in=120), TokenCache()
    assert header(authorizer(server, cache)) == "Bearer t1"
    clock.now += 100  # 120 s minus the 10 s margin is not over yet
    assert header(authorizer(server, cache)) == "Bearer t1"
    clock.now += 15
    assert header(authorizer(server, cache)) == "Bearer t2"


def test_missing_expiry_means_sixty_seconds(clock: Clock) -> None:
    server, cache = TokenServer(expires_in=None), TokenCache()
    assert header(authorizer(server, cache)) == "Bearer t1"
    clock.now += 45
    assert header(authorizer(server, cache)) == "Bearer t1"
    clock.now += 10
    assert header(authorizer(server, cache)) == "Bearer t2"


def test_identity_token_uses_the_refresh_token_grant(clock: Clock) -> None:
    server, cache = TokenServer(), TokenCache()
    creds = Credentials(identity_token="idt-1")
    assert header(authorizer(server, cache, "repository:a:pull", credentials=creds)) == \
        "Bearer t1"
    [request] = server.requests
    assert request["method"] == "POST"
    assert request["data"] == {"grant_type": "refresh_token", "refresh_token": "idt-1",
                               "service": "registry.example", "client_id": "moorage",
                               "scope": "repository:a:pull"}


def test_refused_credentials_and_missing_realm() -> None:
    with pytest.raises(Unauthorized, match="unauthorized: bad credentials"):
        header(authorizer(TokenServer(status=401), TokenCache()))
    no_realm = Authorizer(cast(aiohttp.ClientSession, TokenServer()), Challenge("bearer", ()),
                          Credentials(), ("repository:a:pull",), TokenCache())
    with pytest.raises(Unauthorized, match="no realm specified for token auth challenge"):
        asyncio.run(no_realm.headers())


class Registry:
    """Refuses every token but the newest one it was told about."""

    def __init__(self) -> None:
        self.valid = ""
        self.seen: list[str] = []

    async def request(self, method: str, url: str, *, headers: dict[str, str],
                      data: object, ssl: object, proxy: str | None = None) -> Reply:
        self.seen.append(headers.get("Authorization", ""))
        return Reply(200 if headers.get("Authorization") == f"Bearer {self.valid}" else 401)


def test_a_refused_token_is_dropped_and_fetched_again(clock: Clock) -> None:
    server, cache, registry = TokenServer(), TokenCache(), Registry()
    repo = Repository(cast(aiohttp.ClientSession, registry),
                      Endpoint("https://registry.example", "registry.example", False, True),
                      "a", authorizer(server, cache), None)

    async def get() -> int:
        response = await repo.request("GET", repo.url("manifests/latest"))
        return response.status

    registry.valid = "t1"
    assert asyncio.run(get()) == 200
    registry.valid = "t2"  # the registry revoked t1 before it expired
    assert asyncio.run(get()) == 200
    assert registry.seen == ["Bearer t1", "Bearer t1", "Bearer t2"]
    registry.valid = "never"  # a fresh token refused too: the 401 is the answer
    assert asyncio.run(get()) == 401
    assert registry.seen[-2:] == ["Bearer t2", "Bearer t3"]
    assert header(authorizer(server, cache)) == "Bearer t3"
