"""Authentication and authorization: htpasswd basic auth and a built-in token service.

Policy, kept deliberately simple (documented in the report and --help):

* Without ``--htpasswd`` the registry is open: anyone may pull, push and delete.
* With it, every request needs credentials: HTTP basic with an htpasswd user
  (bcrypt entries only, as ``htpasswd -B`` writes them), or a bearer token from
  ``GET /moor/token`` (Docker's token authentication specification: the 401
  carries ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``).
* Every htpasswd user may pull, push and delete in every repository and read the
  catalog. A token carries only the scopes asked for (``repository:<name>:pull,push``),
  so a token for one repository is DENIED in another.

Tokens are opaque: base64url(JSON claims) "." base64url(HMAC-SHA256), signed with a
key made at start, valid for five minutes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
from aiohttp import web

from moorage.registry.errors import RegistryError

TOKEN_TTL = 300
# Users whose last good password is remembered: bcrypt costs ~50-250 ms of the event
# loop per check, and a client sends basic credentials with every request.
VERIFIED_CACHE_SIZE = 256
ALL_ACTIONS = frozenset({"pull", "push", "delete", "*"})


@dataclass(frozen=True, slots=True)
class Scope:
    """Docker token scope: ``repository:samalba/my-app:pull,push`` or ``registry:catalog:*``."""

    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(text: str) -> Scope | None:
    kind, _, rest = text.partition(":")
    # Names may hold a port ("localhost:5000/x"), so the actions follow the last colon.
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return Scope(kind, name, frozenset(a for a in actions.split(",") if a))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_htpasswd(path: str) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for line in Path(path).read_text().splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and not user.startswith("#"):
            if not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise ValueError(f"{path}: user {user!r} has no bcrypt hash (use htpasswd -B)")
            users[user] = hashed.encode()
    return users


class Auth:
    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._key = secrets.token_bytes(32)
        # user -> (their bcrypt hash, HMAC of the password bcrypt accepted): a keyed hash,
        # so the memory holds no password, and tied to the hash, so a changed entry
        # (another password for the user) is never answered from the cache.
        self._verified: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()

    async def check_password(self, user: str, password: str) -> bool:
        """A remembered good password answers at once; anything else runs bcrypt in a
        thread: tens of milliseconds a check, which a wrong password must not take
        from every other request on the event loop."""
        hashed = self.users.get(user)
        if hashed is None:
            return False
        mac = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        cached = self._verified.get(user)
        if cached is not None and cached[0] == hashed and hmac.compare_digest(cached[1], mac):
            self._verified.move_to_end(user)
            return True
        if not await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed):
            return False
        self._verified[user] = (hashed, mac)
        self._verified.move_to_end(user)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return True

    async def basic_user(self, request: web.Request) -> str | None:
        """The user of valid basic credentials; UNAUTHORIZED for wrong ones, None for none."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError("UNAUTHORIZED", "invalid basic credentials") from None
        if not await self.check_password(user, password):
            raise RegistryError("UNAUTHORIZED", "incorrect username or password")
        return user

    # ------------------------------------------------------------------ tokens

    def issue(self, user: str | None, scopes: list[Scope]) -> str:
        # Authenticated users get what they ask for; anonymous callers get a token
        # with no access, so the registry's own 401 tells them why (as Docker Hub does).
        granted = [{"type": s.type, "name": s.name, "actions": sorted(s.actions & ALL_ACTIONS)}
                   for s in scopes] if user else []
        claims = {"sub": user or "", "access": granted, "exp": int(time.time()) + TOKEN_TTL}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _claims(self, token: str) -> dict[str, Any] | None:
        payload, _, signature = token.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        return claims if claims.get("exp", 0) > time.time() else None

    # ------------------------------------------------------------------ checks

    async def authorize(self, request: web.Request, need: Scope | None) -> str:
        """The caller's name if allowed to do ``need`` (None: any authenticated caller).

        Raises UNAUTHORIZED (with the bearer challenge) without valid credentials and
        DENIED when a token lacks the scope.
        """
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            claims = self._claims(header[7:].strip())
            if claims is None:
                raise self.challenge(request, need, "invalid or expired token")
            if not claims["sub"]:
                raise self.challenge(request, need, None)
            if need is not None and not _grants(claims["access"], need):
                raise RegistryError("DENIED", detail=[str(need)])
            return str(claims["sub"])
        user = await self.basic_user(request)
        if user is None:
            raise self.challenge(request, need, None)
        return user

    def challenge(self, request: web.Request, need: Scope | None,
                  message: str | None) -> RegistryError:
        host = request.host
        header = f'Bearer realm="{request.scheme}://{host}/moor/token",service="{host}"'
        if need is not None:
            header += f',scope="{need}"'
        return RegistryError("UNAUTHORIZED", message, headers={"WWW-Authenticate": header},
                             detail=[str(need)] if need else None)


def _grants(access: list[dict[str, Any]], need: Scope) -> bool:
    for entry in access:
        if entry.get("type") == need.type and entry.get("name") == need.name:
            actions = set(entry.get("actions", ()))
            if "*" in actions or need.actions <= actions:
                return True
    return False
