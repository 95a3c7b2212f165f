"""``moor registry serve`` and ``moor registry gc``: argument parsing and the server's lifetime.

``main(argv)`` takes the arguments after ``registry`` (``["serve", "--listen", …]``)
so ``moor registry …`` and ``python -m moorage.registry …`` share one parser.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import sys
from dataclasses import dataclass

from aiohttp import web

from moorage.registry.app import create_app
from moorage.registry.auth import Auth, load_htpasswd
from moorage.registry.gc import DEFAULT_GRACE, collect
from moorage.registry.observe import AccessLogger
from moorage.registry.proxy import Upstream
from moorage.registry.storage import Storage
from moorage.registry.uploads import Uploads


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str
    port: int
    storage: str
    htpasswd: str | None
    tls_cert: str | None
    tls_key: str | None
    proxy_remote: str | None
    proxy_username: str | None
    proxy_password: str | None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moor registry",
                                     description="An OCI distribution registry.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the registry API")
    serve.add_argument("--listen", required=True, metavar="HOST:PORT")
    serve.add_argument("--storage", required=True, metavar="DIR")
    serve.add_argument("--htpasswd", metavar="FILE",
                       help="require basic or bearer auth by the bcrypt users of FILE; "
                            "every user may pull, push and delete everywhere")
    serve.add_argument("--tls-cert", metavar="FILE")
    serve.add_argument("--tls-key", metavar="FILE")
    serve.add_argument("--proxy-remote", metavar="URL",
                       help="act as a pull-through cache of the registry at URL")
    serve.add_argument("--proxy-username", metavar="U")
    serve.add_argument("--proxy-password", metavar="P")
    gc = sub.add_parser("gc", help="collect unreferenced blobs (safe while serving)")
    gc.add_argument("--storage", required=True, metavar="DIR")
    gc.add_argument("--grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                    help="keep unreferenced blobs younger than this (default: %(default)s)")
    gc.add_argument("--dry-run", action="store_true")
    return parser


def _serve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        parser.error(f"--listen: expected HOST:PORT, got {args.listen!r}")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.proxy_username and not args.proxy_remote:
        parser.error("--proxy-username needs --proxy-remote")
    return ServeConfig(host=host.strip("[]") or "0.0.0.0", port=int(port), storage=args.storage,
                       htpasswd=args.htpasswd, tls_cert=args.tls_cert, tls_key=args.tls_key,
                       proxy_remote=args.proxy_remote, proxy_username=args.proxy_username,
                       proxy_password=args.proxy_password)


def serve(config: ServeConfig) -> None:
    auth = Auth(load_htpasswd(config.htpasswd)) if config.htpasswd else None
    upstream = (Upstream(config.proxy_remote, config.proxy_username, config.proxy_password)
                if config.proxy_remote else None)
    context = None
    if config.tls_cert and config.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls_cert, config.tls_key)
    app = create_app(config.storage, auth=auth, upstream=upstream)
    logging.getLogger("moor.registry").info(json.dumps({
        "msg": "listening", "listen": f"{config.host}:{config.port}", "tls": bool(context),
        "auth": bool(auth), "proxy": config.proxy_remote}))
    # run_app stops cleanly on SIGTERM and SIGINT.
    web.run_app(app, host=config.host, port=config.port, ssl_context=context,
                access_log_class=AccessLogger,
                access_log=logging.getLogger("moor.registry.access"), print=None)


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "gc":
        storage = Storage(args.storage)
        result = collect(storage, Uploads(storage), args.grace, args.dry_run)
        print(json.dumps(result.as_json()))
        return 0
    try:
        serve(_serve_config(args, parser))
    except (OSError, ValueError, ssl.SSLError) as err:
        print(f"moor registry: {err}", file=sys.stderr)
        return 1
    return 0
