"""Who may use the dashboard, and which requests may change anything.

- Loopback by default. Any other address needs `--auth` (a token made at start, printed
  once, stored 0600) and TLS: the dashboard can run anything the engine can.
- Every request's Host must name this server (a page on another site cannot reach a
  loopback dashboard through DNS rebinding).
- State-changing requests (POST, DELETE, the terminal's websocket) need the CSRF token of
  the session's cookie in a header (double submit), a same-site cookie, and an Origin
  that is this server's own.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

CSRF_COOKIE = "moor_csrf"
SESSION_COOKIE = "moor_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ListenError(Exception):
    """A listen address the dashboard refuses to serve on, with the reason."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_listen(value: str) -> Listen:
    """`127.0.0.1:7700`, `[::1]:7700`, `:7700` (every address: not loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"invalid listen address {value!r}: want HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, int(port))


def check_exposure(listen: Listen, auth: bool, tls: bool) -> None:
    if listen.loopback:
        return
    if not auth or not tls:
        raise ListenError(f"refusing to listen on {listen.host}, which is not a loopback "
                          "address, without --auth and --tls-cert/--tls-key: the dashboard "
                          "can do anything the engine can")


def new_token(path: str) -> str:
    """A fresh token, written 0600 (readable by its owner only) before anyone can use it."""
    token = secrets.token_urlsafe(32)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(path + ".tmp", path)
    return token


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _cookie(name: str, value: str, secure: bool, httponly: bool) -> str:
    """Values are URL-safe tokens or hex: nothing to quote."""
    return (f"{name}={value}; Path=/; SameSite=Strict" + ("; Secure" if secure else "") +
            ("; HttpOnly" if httponly else ""))


def middleware(listen: Listen, token: str | None, secure: bool) -> tuple[Callable, Callable]:
    """The aiohttp middleware enforcing the rules of this module's docstring, and the
    on_response_prepare hook that sets its cookies and headers."""
    scheme = "https" if secure else "http"
    names = {listen.host, "localhost", "127.0.0.1", "[::1]", "::1"} if listen.loopback \
        else {listen.host}
    allowed_hosts = {f"{name}:{listen.port}" for name in names}
    # what the session cookie holds: derived from the token, never the token itself
    session = hmac.new(token.encode(), b"session", "sha256").hexdigest() if token else ""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host not in allowed_hosts and listen.host not in ("0.0.0.0", "::"):
            raise web.HTTPMisdirectedRequest(text=f"unknown host {host!r}")
        fresh_session = None
        if token is not None:
            offered = request.query.get("token")
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if _same(offered, token) or _same(bearer, token):
                fresh_session = session
            elif not _same(request.cookies.get(SESSION_COOKIE), session):
                raise web.HTTPUnauthorized(text="a token is needed: open the address that "
                                                "`moor dashboard --auth` printed")
        changing = request.method not in SAFE_METHODS or \
            request.headers.get("Upgrade", "").lower() == "websocket"
        if changing:
            origin = request.headers.get("Origin")
            if origin != f"{scheme}://{host}":
                raise web.HTTPForbidden(text=f"cross-origin request refused (Origin {origin!r})")
            csrf = request.headers.get(CSRF_HEADER) or request.query.get("csrf")
            cookie = request.cookies.get(CSRF_COOKIE)
            if cookie is None or not _same(csrf, cookie):
                raise web.HTTPForbidden(text="missing or wrong CSRF token")
        request["csrf"] = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        request["fresh_session"] = fresh_session
        return await handler(request)

    async def headers(request: web.Request, response: web.StreamResponse) -> None:
        """Cookies and headers, set just before any answer (pages stream) goes out."""
        # aiohttp has already turned response.cookies into headers when this hook runs
        csrf_token = request.get("csrf")
        if csrf_token and request.cookies.get(CSRF_COOKIE) != csrf_token:
            response.headers.add("Set-Cookie", _cookie(CSRF_COOKIE, csrf_token, secure, False))
        if request.get("fresh_session"):
            response.headers.add("Set-Cookie", _cookie(SESSION_COOKIE, request["fresh_session"],
                                                       secure, True))
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")

    return guard, headers
