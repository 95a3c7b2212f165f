"""`python -m moorage.dashboard`: what `moor dashboard` execs (the CLI imports no aiohttp).

The engine is the one the CLI would talk to: `--host`/`--context`/TLS flags as moor's
global ones, else DOCKER_HOST, the current context, the default socket.
"""

from __future__ import annotations

import argparse
import os
import sys

# The dashboard serves a person, not a load: the pure-Python HTTP parser and multidicts
# are fast enough for it, and leaving their C extensions unloaded keeps ~1.8 MiB of RSS
# off a process that is meant to sit idle in the background (issue 15's budget: 40 MiB).
for _package in ("AIOHTTP", "MULTIDICT", "YARL", "PROPCACHE", "FROZENLIST"):
    os.environ.setdefault(f"{_package}_NO_EXTENSIONS", "1")

# What asyncio and aiohttp import for what this process may not do: `ssl` (OpenSSL:
# ~3.7 MiB of RSS, measured) when it does not serve HTTPS, and the zstd codec (~0.6 MiB)
# for client answers it never reads. Both libraries are made to run without them (they
# catch the ImportError). The modules are hidden only while those import, so that a later
# `import ssl` (an engine reached over TLS, in moorage.client.tls) still loads it.
UNUSED_WITHOUT_TLS = ("ssl", "backports.zstd")
UNUSED = ("backports.zstd",)


def import_web(serving_tls: bool) -> None:
    hidden = [name for name in (UNUSED if serving_tls else UNUSED_WITHOUT_TLS)
              if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import aiohttp.web  # noqa: F401  (asyncio with it)
    finally:
        for name in hidden:
            del sys.modules[name]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moor dashboard",
                                description="Serve a web interface for the engine")
    p.add_argument("--listen", default="127.0.0.1:7700",
                   help="address to serve on (default 127.0.0.1:7700, loopback only)")
    p.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    p.add_argument("--auth", action="store_true",
                   help="require a token (made now, printed once, stored 0600)")
    p.add_argument("--tls-cert", help="certificate to serve HTTPS with")
    p.add_argument("--tls-key", help="key of --tls-cert")
    engine = p.add_argument_group("engine (as moor's global options)")
    engine.add_argument("-H", "--host")
    engine.add_argument("-c", "--context")
    engine.add_argument("--tls", action="store_true")
    engine.add_argument("--tlsverify", action="store_true")
    engine.add_argument("--tlscacert")
    engine.add_argument("--tlscert")
    engine.add_argument("--tlskey")
    return p


def token_path() -> str:
    from moorage.client.contexts import config_dir

    return os.path.join(config_dir(), "moor-dashboard", "token")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import_web(serving_tls=bool(args.tls_cert))
    import asyncio

    from aiohttp import web

    from moorage.client.errors import EndpointError
    from moorage.client.target import resolve
    from moorage.client.tls_options import tls_from_flags
    from moorage.dashboard.app import make_app
    from moorage.dashboard.engine import Engine
    from moorage.dashboard.security import (
        ListenError,
        check_exposure,
        new_token,
        parse_listen,
    )

    try:
        listen = parse_listen(args.listen)
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ListenError("--tls-cert and --tls-key go together")
        check_exposure(listen, args.auth, bool(args.tls_cert))
        tls = tls_from_flags(args.tls, args.tlsverify, args.tlscacert, args.tlscert,
                             args.tlskey)
        endpoint = resolve(args.host, args.context, tls)
    except (ListenError, EndpointError) as err:
        sys.stderr.write(f"moor dashboard: {err}\n")
        return 125
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    scheme = "https" if ssl_context else "http"
    shown_host = f"[{listen.host}]" if ":" in listen.host else listen.host
    url = f"{scheme}://{shown_host}:{listen.port}/"
    token = None
    if args.auth:
        token = new_token(token_path())
        url += f"?token={token}"
        sys.stdout.write(f"token (shown once, stored in {token_path()}): {token}\n")
    app = make_app(Engine(endpoint), listen, token, secure=ssl_context is not None)
    sys.stdout.write(f"moor dashboard on {url} (engine {endpoint.host})\n")
    sys.stdout.flush()
    if args.open:
        async def open_browser(_app: web.Application) -> None:
            import webbrowser

            # once the server listens: startup runs just before the socket is bound
            asyncio.get_running_loop().call_later(0.2, webbrowser.open, url)

        app.on_startup.append(open_browser)
    # Pages keep their live streams open for as long as they are shown: waiting for them
    # to end (aiohttp's default, up to a minute) would only delay a stop; a page reconnects.
    web.run_app(app, host=listen.host, port=listen.port, ssl_context=ssl_context,
                print=None, access_log=None, handle_signals=True, shutdown_timeout=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
