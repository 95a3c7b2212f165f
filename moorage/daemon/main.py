"""`moord`: the engine daemon, serving the Docker Engine API."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import ssl
import sys
from typing import Any

import uvloop

from moorage.errors import MoorError

log = logging.getLogger("moord")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moord", description="moorage's engine daemon")
    parser.add_argument("--config-file", default=None,
                        help="daemon configuration file (default /etc/moor/daemon.json)")
    parser.add_argument("--data-root", help="root of persistent state (default /var/lib/moor)")
    parser.add_argument("--exec-root", help="root of runtime state (default /run/moor)")
    parser.add_argument("-H", "--host", action="append", dest="hosts", default=[],
                        help="socket(s) to listen on (unix:///path)")
    parser.add_argument("-l", "--log-level", choices=("debug", "info", "warn", "error", "fatal"))
    parser.add_argument("--default-runtime")
    parser.add_argument("--add-runtime", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--registry-mirror", action="append", default=[])
    parser.add_argument("--insecure-registry", action="append", default=[])
    parser.add_argument("--live-restore", action="store_true", default=None)
    parser.add_argument("--log-driver", help="default driver for container logs")
    parser.add_argument("--log-opt", action="append", default=[], metavar="NAME=VALUE",
                        help="default log driver options for containers")
    parser.add_argument("-b", "--bridge", help="the default bridge network's Linux bridge "
                        "(default moor0)")
    parser.add_argument("--bip", help="the default bridge's address, CIDR")
    parser.add_argument("--tls", nargs="?", const="true", default=None, metavar="BOOL",
                        help="use TLS on tcp:// hosts (--tls=false: plain TCP, insecure)")
    parser.add_argument("--tlsverify", action="store_true", default=None,
                        help="use TLS and require client certificates signed by --tlscacert")
    parser.add_argument("--tlscacert", help="CA certificate that client certificates must "
                        "chain to")
    parser.add_argument("--tlscert", help="the daemon's certificate")
    parser.add_argument("--tlskey", help="the daemon's private key")
    parser.add_argument("--cri-socket", help="serve the Kubernetes CRI (v1, gRPC) on this "
                        "socket (unix:///path)")
    parser.add_argument("--cni-conf-dir", help="CNI network configurations for pods "
                        "(default /etc/cni/net.d)")
    parser.add_argument("--cni-bin-dir", help="CNI plugins, folders separated by ':' "
                        "(default /usr/lib/cni:/opt/cni/bin)")
    parser.add_argument("--cri-sandbox-image", help="the pause image of pod sandboxes "
                        "(default registry.k8s.io/pause:3.9)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from moorage.daemon import config as config_mod
    from moorage.daemon.containers.logconfig import check_defaults

    runtimes = {}
    for item in args.add_runtime:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            sys.stderr.write(f"moord: --add-runtime {item!r}: expected NAME=PATH\n")
            return 1
        runtimes[name] = {"path": path}
    try:
        file_data = config_mod.read_file(args.config_file or config_mod.DEFAULT_CONFIG_FILE,
                                         required=args.config_file is not None)
        if runtimes:
            file_data = {**file_data, "runtimes": {**file_data.get("runtimes", {}), **runtimes}}
        config = config_mod.build(file_data, {
            "data-root": args.data_root, "exec-root": args.exec_root, "hosts": args.hosts,
            "log-level": args.log_level, "default-runtime": args.default_runtime,
            "registry-mirrors": args.registry_mirror,
            "insecure-registries": args.insecure_registry, "live-restore": args.live_restore,
            "bridge": args.bridge, "bip": args.bip,
            "tls": args.tls, "tlsverify": args.tlsverify, "tlscacert": args.tlscacert,
            "tlscert": args.tlscert, "tlskey": args.tlskey, "log-driver": args.log_driver,
            "cri-socket": args.cri_socket, "cni-conf-dir": args.cni_conf_dir,
            "cni-bin-dir": args.cni_bin_dir, "cri-sandbox-image": args.cri_sandbox_image,
            "log-opts": dict(o.partition("=")[::2] for o in args.log_opt) or None})
        check_defaults(config.log_driver, config.log_opts)
    except MoorError as err:
        sys.stderr.write(f"moord: {err}\n")
        return 1
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level,
                                                         config.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="time=%(asctime)s level=%(levelname)s msg=%(message)s")
    try:
        # uvloop: every API request and shim round trip costs less loop time than on
        # asyncio's own loop (docker run --rm 0.93x, A/B).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(config))
    except MoorError as err:
        sys.stderr.write(f"moord: {err}\n")
        return 1


async def serve(config: object) -> int:
    from aiohttp import web

    from moorage.api.build.routes import add_routes as build_routes
    from moorage.api.commit.routes import add_routes as commit_routes
    from moorage.api.containers.routes import add_routes as container_routes
    from moorage.api.containers.routes import claims_body
    from moorage.api.events.routes import add_routes as event_routes
    from moorage.api.exec.routes import add_routes as exec_routes
    from moorage.api.images.routes import add_routes as image_routes
    from moorage.api.networks.routes import add_routes as network_routes
    from moorage.api.rawrequest import Runner
    from moorage.api.server import create_app
    from moorage.api.system.df import add_routes as disk_usage_routes
    from moorage.api.system.routes import add_routes as system_routes
    from moorage.api.system.unsupported import add_routes as unsupported_routes
    from moorage.api.tlssite import TLSSite
    from moorage.api.volumes.routes import add_routes as volume_routes
    from moorage.daemon.config import DaemonConfig
    from moorage.daemon.engine import Engine
    from moorage.daemon.listen import claim_pidfile, listen_unix, release_pidfile

    assert isinstance(config, DaemonConfig)
    # Before anything is made: a SIGTERM that comes as soon as the socket appears (a
    # loaded machine's test) would otherwise kill moord with its bridge and nft table set up.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pidfile = claim_pidfile(config.exec_root)
    engine = Engine(config)
    await engine.start()
    app = create_app()
    system_routes(app, engine.system)
    image_routes(app, engine.images)
    commit_routes(app, engine.commits)
    build_routes(app, engine.builds)
    container_routes(app, engine.containers)
    exec_routes(app, engine.containers)
    event_routes(app, engine.event_log)
    disk_usage_routes(app, engine.disk_usage)
    volume_routes(app, engine.volumes)
    network_routes(app, engine.networks)
    unsupported_routes(app)
    runner = Runner(app, wanted=claims_body, access_log=None, handle_signals=False)
    await runner.setup()
    sockets: list[str] = []
    cri: Any = None
    try:
        # Every tcp:// host is checked (addresses, TLS files) before anything listens.
        tcp = {host: _tcp_listener(host, config) for host in config.hosts
               if host.startswith("tcp://")}
        for address, port, context in tcp.values():
            site = web.TCPSite if context is None else TLSSite
            await site(runner, address, port, ssl_context=context).start()
            log.info("API listen on %s:%s%s", address, port, " (TLS)" if context else "")
        cri = await _serve_cri(engine) if config.cri_socket else None
        # The unix sockets last: a client that finds one (a test, a unit waiting for the
        # file) then finds every tcp:// host and the CRI listening too.
        for host in config.hosts:
            if host in tcp:
                continue
            if not host.startswith("unix://"):
                raise MoorError(f"unsupported host {host!r}: unix:// or tcp://")
            path = host[len("unix://"):]
            await web.SockSite(runner, listen_unix(path)).start()
            sockets.append(path)
            log.info("API listen on %s", path)
    except BaseException:
        if cri is not None:
            await cri.stop(1)
        await runner.cleanup()
        await engine.stop()
        release_pidfile(pidfile)
        raise
    # What the start made lives as long as the daemon: out of the collector's sight,
    # its collections walk only what came after (a full one took 15 ms, an older-
    # generation one ~1 ms, measured; the event loop, and so every embedded DNS
    # answer, waits for them).
    gc.freeze()
    log.info("moord ready")
    await stop.wait()
    log.info("shutting down")
    if cri is not None:
        await cri.stop(1)
        # Gone with the daemon, as the API's: a client waiting for the file of the next
        # start must not find this one.
        sockets.append(config.cri_socket)
    await runner.cleanup()
    await engine.stop()
    for path in sockets:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    release_pidfile(pidfile)
    return 0


async def _serve_cri(engine: object) -> object:
    """The CRI's gRPC server beside the Engine API, on the same services."""
    from moorage.cri.cni import Cni
    from moorage.cri.server import CriService, serve
    from moorage.daemon.engine import Engine
    from moorage.daemon.networks.netns import tcp_socket
    from moorage.store.metadata import CRI_NAMESPACE

    assert isinstance(engine, Engine)
    config = engine.config
    server = await serve(config.cri_socket, CriService(
        config.data_root, engine.containers, engine.images.namespaced(CRI_NAMESPACE),
        Cni(config.cni_conf_dir, config.cni_bin_dir), config.cri_sandbox_image, tcp_socket))
    log.info("CRI listen on %s", config.cri_socket)
    return server


def _tcp_listener(host: str, config: object) -> tuple[str, int, ssl.SSLContext | None]:
    """tcp://ADDR:PORT: its address, port and TLS context (client certificates required
    with tlsverify), as dockerd. Plain TCP only with an explicit --tls=false."""
    from moorage.daemon.config import DaemonConfig
    from moorage.daemon.listen import warn_without_client_verification

    assert isinstance(config, DaemonConfig)
    address, _, port = host[len("tcp://"):].rpartition(":")
    if not port.isdigit():
        raise MoorError(f"invalid host {host!r}: expected tcp://ADDRESS:PORT")
    address = address.strip("[]") or "0.0.0.0"
    if config.tls_verify or config.tls:
        context = _tls_context(config)
        if not config.tls_verify:
            warn_without_client_verification(host)
        return address, int(port), context
    if config.tls is None:
        raise MoorError(f"refusing to serve the API on {host} without encryption: it gives "
                        "root on this host to anyone who can reach it. Use --tlsverify with "
                        "--tlscacert, --tlscert and --tlskey, or --tls=false to accept it")
    log.warning("API is accessible on http://%s:%s without encryption: access to the "
                "remote API is equivalent to root access on the host", address, port)
    return address, int(port), None


def _tls_context(config: object) -> ssl.SSLContext:
    from moorage.daemon.config import DaemonConfig

    assert isinstance(config, DaemonConfig)
    if not (config.tls_cert and config.tls_key):
        raise MoorError("TLS needs --tlscert and --tlskey")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # dockerd's minimum
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
        if config.tls_verify:
            if not config.tls_ca_cert:
                raise MoorError("--tlsverify needs --tlscacert")
            context.load_verify_locations(config.tls_ca_cert)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as err:
        raise MoorError(f"could not load the TLS configuration: {err}") from None
    return context
