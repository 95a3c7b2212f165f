"""Where the daemon is and how to reach it: unix socket, tcp (+TLS) or ssh.

Which endpoint a command uses is moorage.client.target's business.
"""

from __future__ import annotations

# _socket, not socket: socket.py wraps constants in enums and imports selectors,
# ~3 ms of start-up that a unix-socket client does not need.
import _socket

from moorage.client.errors import EndpointError
from moorage.client.tls_options import TLSOptions

DEFAULT_HOST = "unix:///run/moor/moord.sock"


# A plain slotted class, not a dataclass: importing dataclasses costs ~12 ms of
# start-up (it pulls in inspect), a third of `moor version`'s budget.
class Endpoint:
    __slots__ = ("context", "host", "tls")

    def __init__(self, host: str, tls: TLSOptions | None = None,
                 context: str = "default") -> None:
        self.host, self.tls, self.context = host, tls, context

    @property
    def local(self) -> bool:
        """A unix socket: another connection costs a connect(2), where tcp with TLS costs
        a handshake and ssh a process."""
        return self.host.startswith("unix://")

    def connect(self, timeout: float | None = None) -> _socket.socket:
        scheme, _, rest = self.host.partition("://")
        if scheme == "unix":
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(rest)
            except OSError:
                sock.close()
                raise
            return sock
        if scheme == "tcp":
            address, port = _host_port(rest, 2376 if self.tls else 2375)
            import socket

            sock = socket.create_connection((address, port), timeout=timeout)
            if self.tls:
                from moorage.client.tls import wrap

                return wrap(sock, address, self.tls)
            return sock
        if scheme == "ssh":
            from moorage.client.ssh import connect

            return connect(rest)
        raise EndpointError(f"unsupported protocol scheme {scheme!r} in {self.host!r}")

    @property
    def http_host(self) -> str:
        """The Host header: docker sends the address for tcp, a placeholder otherwise."""
        scheme, _, rest = self.host.partition("://")
        return rest.rstrip("/") if scheme == "tcp" else "api.moby.localhost"


def _host_port(rest: str, default_port: int) -> tuple[str, int]:
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        address, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        address, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    return address or "localhost", int(port) if port else default_port


def normalize_host(host: str) -> str:
    """Accept docker's shorthands: a bare path, `:2375`, `host:port`."""
    if "://" in host:
        return host
    if host.startswith("/"):
        return "unix://" + host
    return "tcp://" + (host if not host.startswith(":") else "localhost" + host)
