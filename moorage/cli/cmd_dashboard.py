"""`moor dashboard`: the web interface runs in its own interpreter (python -m
moorage.dashboard), as `moor registry` does, so the CLI keeps importing no aiohttp."""

from __future__ import annotations

import os
import sys

from moorage.cli.flags import BOOL, STR, Spec, flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.cli.flags import Options
    from moorage.cli.session import Session


def dashboard(session: Session, opts: Options, _args: list[str]) -> None:
    argv = [sys.executable, "-P", "-m", "moorage.dashboard", "--listen", opts.listen]
    argv += [f"--{name}" for name in ("open", "auth") if getattr(opts, name)]
    argv += [item for name in ("tls_cert", "tls_key") if getattr(opts, name)
             for item in (f"--{name.replace('_', '-')}", getattr(opts, name))]
    # The engine the dashboard talks to is the one this command line names.
    g = session.options
    if g.host:
        argv += ["--host", g.host[-1]]
    argv += [item for name in ("context", "tlscacert", "tlscert", "tlskey") if getattr(g, name)
             for item in (f"--{name}", getattr(g, name))]
    argv += [f"--{name}" for name in ("tls", "tlsverify") if getattr(g, name)]
    # glibc gives each thread that allocates an arena of its own and keeps what they
    # freed; the dashboard's API and stream threads are few and idle, one arena is
    # plenty (~0.8 MiB less at rest, measured; issue 15's budget is 40 MiB).
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")
    os.execv(sys.executable, argv)


SPECS = {
    "dashboard": Spec("[OPTIONS]", dashboard, (
        flag("listen", STR, "Address to serve on (any other than loopback needs --auth and TLS)",
             "127.0.0.1:7700"),
        flag("open", BOOL, "Open the dashboard in the default browser"),
        flag("auth", BOOL, "Require a token (generated, printed once, stored 0600)"),
        flag("tls-cert", STR, "Certificate to serve HTTPS with"),
        flag("tls-key", STR, "Key of --tls-cert"),
    ), max_args=0),
}
