"""HTTP to registries: one aiohttp session per operation, authorised per repository.

Flow (distribution-spec "Determining support", token.md): ``GET /v2/`` first on
each endpoint in turn until one answers; a 401 there names the auth scheme,
so later requests carry credentials from the start instead of each taking a
401 first. A request that still gets a 401 (an expired token) is retried once
with a fresh token. Redirects (blob storage on another host) are followed;
aiohttp drops the Authorization header when the host changes.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp

from moorage.distribution.auth import Authorizer, Credentials, TokenCache, error_message, json_body
from moorage.distribution.mirrors import Endpoint, RegistryConfig, proxy_for, ssl_context
from moorage.errors import MoorError, NotFound, SystemFailure, Unauthorized
from moorage.protocol.challenge import Challenge, preferred_challenge

log = logging.getLogger("moord.distribution")

_T = TypeVar("_T")
# Layers arrive in big pieces: aiohttp's 64 KiB default makes the unpacking
# thread wake up far too often, and its flow control pause the socket.
READ_BUFFER = 4 << 20
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15, sock_read=60)


class RegistryError(MoorError):
    """A registry answered with an error status; ``status`` and the decoded message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Repository:
    """One repository on one endpoint, with the authorisation for its scopes."""

    http: aiohttp.ClientSession
    endpoint: Endpoint
    path: str  # "library/busybox"
    auth: Authorizer
    ssl: Any  # ssl.SSLContext | None, aiohttp's ssl= argument

    def url(self, suffix: str) -> str:
        return f"{self.endpoint.url}/v2/{self.path}/{suffix}"

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      data: Any = None, replayable: bool = True) -> aiohttp.ClientResponse:
        """Send with credentials; a 401 is retried once with a fresh token when the
        body can be sent again. The caller closes the response. Connection
        failures raise SystemFailure with Go's wording, as dockerd reports them."""
        for attempt in (0, 1):
            sent = {**(headers or {}), **await self.auth.headers()}
            try:
                response = await self.http.request(method, url, headers=sent, data=data,
                                                   ssl=self.ssl, proxy=proxy_for(url))
            except aiohttp.ClientConnectorError as e:
                raise SystemFailure(_dial_error(method, url, e)) from None
            if response.status != 401 or attempt or not replayable:
                return response
            response.release()
            self.auth.invalidate()
        raise AssertionError("unreachable")

    async def check(self, response: aiohttp.ClientResponse, *ok: int) -> None:
        """Raise RegistryError (and release) unless the status is one of ``ok``."""
        if response.status in ok:
            return
        body = await json_body(response)
        response.release()
        raise RegistryError(response.status, error_message(
            body, f"{response.status} {response.reason}"))


class Registry:
    """An aiohttp session for one pull, push or login; use ``async with``."""

    def __init__(self, config: RegistryConfig, tokens: TokenCache) -> None:
        self.config = config
        self.tokens = tokens
        self.http = aiohttp.ClientSession(
            timeout=_TIMEOUT, read_bufsize=READ_BUFFER, auto_decompress=False,
            connector=aiohttp.TCPConnector(limit_per_host=8))

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def ping(self, endpoint: Endpoint,
                   headers: dict[str, str] | None = None) -> tuple[int, Challenge | None, str]:
        """GET /v2/: the status, the challenge a 401 carries, and the error message."""
        url = f"{endpoint.url}/v2/"
        try:
            async with self.http.get(url, headers=headers or {}, proxy=proxy_for(url),
                                     ssl=ssl_context(endpoint, self.config.certs_dir)) as r:
                challenge = preferred_challenge(r.headers.getall("WWW-Authenticate", []))
                message = "" if r.status == 200 else error_message(
                    await json_body(r), f"{r.status} {r.reason}")
                return r.status, challenge, message
        except aiohttp.ClientConnectorError as e:
            raise SystemFailure(_dial_error("GET", url, e)) from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SystemFailure(f'Get "{url}": {e or type(e).__name__}') from None

    async def repository(self, endpoint: Endpoint, path: str, credentials: Credentials,
                         actions: str, *, mount_from: tuple[str, ...] = ()) -> Repository:
        """Ping ``endpoint`` and authorise ``actions`` ("pull" or "pull,push") on ``path``
        (and pull on each of ``mount_from``, for cross-repository mounts)."""
        _, challenge, _ = await self.ping(endpoint)
        scopes = (f"repository:{path}:{actions}",
                  *(f"repository:{source}:pull" for source in mount_from))
        auth = Authorizer(self.http, challenge, credentials, scopes, self.tokens)
        return Repository(self.http, endpoint, path, auth,
                          ssl_context(endpoint, self.config.certs_dir))


async def first_answer(endpoints: list[Endpoint],
                       attempt: Callable[[Endpoint], Awaitable[_T]]) -> _T:
    """``attempt`` on each endpoint in order until one succeeds; dockerd's fallback.

    An endpoint that cannot be reached is skipped; a mirror is skipped on any
    error (it may not have the image); the registry's own answer is final,
    except that HTTPS failing on an insecure registry falls back to HTTP."""
    last: Exception | None = None
    for index, endpoint in enumerate(endpoints):
        try:
            return await attempt(endpoint)
        except (SystemFailure, aiohttp.ClientError, TimeoutError, OSError) as e:
            last = e
        except (RegistryError, NotFound, Unauthorized) as e:
            if not endpoint.mirror:
                raise
            last = e
        if index + 1 < len(endpoints):
            log.info("endpoint %s failed (%s); trying %s", endpoint.url, last,
                     endpoints[index + 1].url)
    assert last is not None
    if isinstance(last, MoorError):
        raise last
    raise SystemFailure(str(last) or type(last).__name__) from last


def _dial_error(method: str, url: str, e: aiohttp.ClientConnectorError) -> str:
    error = e.os_error
    if isinstance(error, socket.gaierror):
        return f'{method.capitalize()} "{url}": dial tcp: lookup {e.host}: no such host'
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f'{method.capitalize()} "{url}": tls: {e.certificate_error}'
    if isinstance(error, ssl.SSLError):
        return f'{method.capitalize()} "{url}": tls: {error.reason or error}'
    reason = os.strerror(error.errno).lower() if error and error.errno else str(error or e)
    # Go names the proxy's own dial so (net/http's "proxyconnect").
    via = "proxyconnect tcp: " if isinstance(e, aiohttp.ClientProxyConnectionError) else ""
    return f'{method.capitalize()} "{url}": {via}dial tcp {e.host}:{e.port}: connect: {reason}'


async def login(registry: Registry, endpoints_: list[Endpoint],
                credentials: Credentials) -> None:
    """Check credentials against ``/v2/`` with the challenge flow, as moby's loginV2:
    Unauthorized with its message when the registry refuses them."""

    async def attempt(endpoint: Endpoint) -> None:
        status, challenge, message = await registry.ping(endpoint)
        if status == 200:
            return
        if status != 401 or challenge is None:
            raise SystemFailure(f"login attempt to {endpoint.url}/v2/ failed with status: "
                              f"{status} {HTTPStatus(status).phrase}: {message}")
        auth = Authorizer(registry.http, challenge, credentials, (), registry.tokens)
        status, _, message = await registry.ping(endpoint, await auth.headers())
        if status != 200:
            raise Unauthorized(f"login attempt to {endpoint.url}/v2/ failed with status: "
                               f"{status} {HTTPStatus(status).phrase}")

    await first_answer(endpoints_, attempt)
