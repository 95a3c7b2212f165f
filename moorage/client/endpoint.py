"""Where the daemon is and how to reach it: unix socket, tcp (+TLS) or ssh.

Resolution follows the docker CLI: `-H` beats `--context`, which beats
MOOR_HOST/DOCKER_HOST, then DOCKER_CONTEXT, then `currentContext` in
config.json, then the default socket.
"""

from __future__ import annotations

# _socket, not socket: socket.py wraps constants in enums and imports selectors,
# ~3 ms of start-up that a unix-socket client does not need.
import _socket
import os

from moorage.client.errors import EndpointError

DEFAULT_HOST = "unix:///run/moor/moord.sock"


# Plain slotted classes, not dataclasses: importing dataclasses costs ~12 ms of
# start-up (it pulls in inspect), a third of `moor version`'s budget.
class TLSOptions:
    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 verify: bool = True) -> None:
        self.ca, self.cert, self.key, self.verify = ca, cert, key, verify


class Endpoint:
    __slots__ = ("context", "host", "tls")

    def __init__(self, host: str, tls: TLSOptions | None = None,
                 context: str = "default") -> None:
        self.host, self.tls, self.context = host, tls, context

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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


def tls_from_flags(tls: bool, verify: bool, ca: str | None, cert: str | None,
                   key: str | None) -> TLSOptions | None:
    """TLS settings from --tls* flags and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, as docker does."""
    verify = verify or _env_flag("DOCKER_TLS_VERIFY")
    if not (tls or verify or ca or cert or key):
        return None
    cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.join(
        os.path.expanduser("~"), ".docker")

    def pick(given: str | None, name: str) -> str | None:
        if given:
            return given
        default = os.path.join(cert_path, name)
        return default if os.path.exists(default) else None

    # docker drops a default cert.pem/key.pem that does not exist, but keeps ca.pem:
    # verifying against a CA file that is missing is an error, not the system's CAs.
    ca = ca or (os.path.join(cert_path, "ca.pem") if verify else pick(None, "ca.pem"))
    return TLSOptions(ca=ca, cert=pick(cert, "cert.pem"), key=pick(key, "key.pem"),
                      verify=verify)


def resolve(host: str | None, context: str | None, tls: TLSOptions | None) -> Endpoint:
    if host and context:
        raise EndpointError('conflicting options: cannot specify both "--host" and "--context"')
    if host:
        return Endpoint(normalize_host(host), tls)
    if not context:
        env_host = os.environ.get("MOOR_HOST") or os.environ.get("DOCKER_HOST")
        if env_host:
            return Endpoint(normalize_host(env_host), tls)
        from moorage.client.contexts import current

        context = current()
    if context and context != "default":
        from moorage.client.contexts import load

        return load(context)
    return Endpoint(DEFAULT_HOST, tls)
