"""Registry authentication: Basic, and bearer tokens from the challenge's realm.

docker/distribution docs/spec/auth/token.md: a registry answers 401 with
``WWW-Authenticate: Bearer realm=…,service=…``; the client asks the realm for a
token for ``service`` and its ``scope`` (``repository:<name>:pull,push``),
anonymously or with Basic credentials (or, with an identity token, by the OAuth2
refresh-token grant of oauth.md), and sends ``Authorization: Bearer <token>``.
Tokens are cached until shortly before ``expires_in`` (60 s when absent, as
the spec says) and fetched again after that or after a 401.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import aiohttp

from moorage.distribution.mirrors import proxy_for
from moorage.errors import Unauthorized
from moorage.protocol.challenge import Challenge

_DEFAULT_EXPIRY = 60
# Refresh this long before the registry's expiry: requests take time to arrive.
_EXPIRY_MARGIN = 10
_CLIENT_ID = "moorage"


@dataclass(frozen=True, slots=True)
class Credentials:
    """X-Registry-Auth's AuthConfig (Engine API), minus what is only the CLI's."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""  # a bearer token to send as is

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float  # time.monotonic()


class TokenCache:
    """Tokens by (realm, service, scopes, user): kept across pulls by the daemon."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}

    def get(self, key: tuple[str, ...]) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires <= time.monotonic():
            self._tokens.pop(key, None)
            return None
        return token.value

    def put(self, key: tuple[str, ...], value: str, lifetime: float) -> None:
        self._tokens[key] = _Token(value, time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 1))

    def drop(self, key: tuple[str, ...]) -> None:
        self._tokens.pop(key, None)


async def json_body(response: aiohttp.ClientResponse) -> object:
    """The response's JSON body, or None when it has none or it is not JSON."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def error_message(body: object, fallback: str) -> str:
    """A registry's (or token server's) error body as docker prints it: "code: message"
    for each entry of distribution-spec's ``errors`` array, lower case codes."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            parts = []
            for entry in errors:
                if not isinstance(entry, dict):
                    continue
                code = str(entry.get("code", "")).lower().replace("_", " ")
                message = str(entry.get("message", ""))
                parts.append(f"{code}: {message}" if code else message)
            if parts:
                return ", ".join(parts)
        for key in ("details", "message", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return fallback


class Authorizer:
    """The Authorization header for one endpoint and one set of scopes."""

    def __init__(self, http: aiohttp.ClientSession, challenge: Challenge | None,
                 credentials: Credentials, scopes: tuple[str, ...], cache: TokenCache) -> None:
        self._http = http
        self._challenge = challenge
        self._credentials = credentials
        self._scopes = scopes
        self._cache = cache

    def _key(self) -> tuple[str, ...]:
        assert self._challenge is not None
        return (self._challenge.param("realm"), self._challenge.param("service"),
                self._credentials.username, self._credentials.identity_token, *self._scopes)

    async def headers(self) -> dict[str, str]:
        """Raises Unauthorized when the token server refuses the credentials."""
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            return {} if self._credentials.anonymous else \
                {"Authorization": self._credentials.basic()}
        if challenge.scheme != "bearer":
            return {}
        if self._credentials.registry_token:
            return {"Authorization": f"Bearer {self._credentials.registry_token}"}
        key = self._key()
        token = self._cache.get(key)
        if token is None:
            token, lifetime = await self._fetch()
            self._cache.put(key, token, lifetime)
        return {"Authorization": f"Bearer {token}"}

    def invalidate(self) -> None:
        """Forget the cached token (the registry refused it)."""
        if self._challenge is not None and self._challenge.scheme == "bearer":
            self._cache.drop(self._key())

    async def _fetch(self) -> tuple[str, float]:
        assert self._challenge is not None
        realm = self._challenge.param("realm")
        if not realm:
            # docker/distribution registry/client/auth/session.go's wording.
            raise Unauthorized("no realm specified for token auth challenge")
        service = self._challenge.param("service")
        query: list[tuple[str, str]] = [("service", service)] if service else []
        query += [("scope", s) for s in self._scopes]
        creds = self._credentials
        if creds.identity_token:
            # oauth.md: the refresh-token grant with the identity token login returned.
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "client_id": _CLIENT_ID,
                    "scope": " ".join(self._scopes)}
            response = await self._http.post(realm, data=form, proxy=proxy_for(realm))
        else:
            headers = {} if creds.anonymous else {"Authorization": creds.basic()}
            response = await self._http.get(realm, params=query, headers=headers,
                                            proxy=proxy_for(realm))
        async with response:
            body = await json_body(response)
            if response.status != 200:
                raise Unauthorized(error_message(
                    body, f"getting a token from {realm} failed with status: "
                          f"{response.status} {response.reason}"))
        if not isinstance(body, dict):
            raise Unauthorized(f"the token server {realm} sent no token")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise Unauthorized(f"the token server {realm} sent no token")
        lifetime = body.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 \
            else float(_DEFAULT_EXPIRY)
