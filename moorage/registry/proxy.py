"""Pull-through cache: fetch what is missing locally from an upstream registry.

The upstream may answer 401 with a ``WWW-Authenticate`` challenge (Docker's token
authentication specification): Bearer → fetch a token from the realm with the
configured credentials (anonymous without them) and retry; Basic → retry with the
credentials. Tokens are cached per scope until they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass

import aiohttp

from moorage.protocol.challenge import Challenge, preferred_challenge
from moorage.registry.errors import RegistryError
from moorage.registry.manifests import MANIFEST_TYPES
from moorage.registry.names import Digest
from moorage.registry.storage import Storage
from moorage.registry.uploads import write_and_hash

_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)


@dataclass(frozen=True, slots=True)
class UpstreamManifest:
    data: bytes
    media_type: str


class Upstream:
    def __init__(self, url: str, username: str | None, password: str | None) -> None:
        self.url = url.rstrip("/")
        self.auth = aiohttp.BasicAuth(username, password or "") if username else None
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        # One download per blob at a time: concurrent pulls of a layer wait for it.
        self._inflight: dict[Digest, asyncio.Future[None]] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, name: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET with the challenge flow; the caller must release the response."""
        scope = f"repository:{name}:pull"
        for attempt in range(2):
            cached = self._tokens.get(scope)
            auth_headers = dict(headers)
            if cached and cached[1] > time.monotonic():
                auth_headers["Authorization"] = f"Bearer {cached[0]}"
            response = await self.session.get(
                self.url + path, headers=auth_headers,
                auth=self.auth if "Authorization" not in auth_headers and attempt else None)
            if response.status != 401 or attempt:
                return response
            challenge = preferred_challenge(response.headers.getall("WWW-Authenticate", []))
            response.release()
            if challenge is not None and challenge.scheme == "bearer":
                await self._fetch_token(challenge, scope)
        raise AssertionError("unreachable")

    async def _fetch_token(self, challenge: Challenge, scope: str) -> None:
        params = {"scope": scope}
        if challenge.param("service"):
            params["service"] = challenge.param("service")
        async with self.session.get(challenge.param("realm"), params=params,
                                    auth=self.auth) as response:
            if response.status != 200:
                raise RegistryError("UNAUTHORIZED", "upstream token service refused: "
                                    f"{response.status}")
            body = await response.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        expires = float(body.get("expires_in") or 60)
        self._tokens[scope] = (token, time.monotonic() + expires - 5)

    async def manifest(self, name: str, reference: str) -> UpstreamManifest | None:
        """The upstream's manifest, or None when it has none; aiohttp.ClientError when down."""
        response = await self._get(f"/v2/{name}/manifests/{reference}", name,
                                   {"Accept": ", ".join(MANIFEST_TYPES)})
        async with response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise RegistryError("UNAVAILABLE", f"upstream answered {response.status}")
            data = await response.read()
            return UpstreamManifest(data, response.headers.get("Content-Type", ""))

    async def fetch_blob(self, storage: Storage, name: str, digest: Digest) -> bool:
        """Download a blob into the store and link it to ``name``; False if upstream lacks it."""
        pending = self._inflight.get(digest)
        if pending is not None:
            await asyncio.shield(pending)
            return storage.link_blob(name, digest)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            return await self._download(storage, name, digest)
        finally:
            del self._inflight[digest]
            future.set_result(None)

    async def _download(self, storage: Storage, name: str, digest: Digest) -> bool:
        response = await self._get(f"/v2/{name}/blobs/{digest}", name, {})
        async with response:
            if response.status == 404:
                return False
            if response.status != 200:
                raise RegistryError("UNAVAILABLE", f"upstream answered {response.status}")
            tmp = storage.temp_file()
            try:
                hasher = hashlib.new(digest.algorithm)
                with open(tmp, "wb") as f:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        await asyncio.to_thread(write_and_hash, f, hasher, chunk)
                    await asyncio.to_thread(os.fsync, f.fileno())
                if hasher.hexdigest() != digest.hex:
                    raise RegistryError("UNAVAILABLE", "upstream sent content that does not "
                                        "match its digest", detail={"digest": str(digest)})
                await asyncio.to_thread(storage.commit_blob, name, tmp, digest)
            finally:
                tmp.unlink(missing_ok=True)
        return True

