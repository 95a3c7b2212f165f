"""Where a registry is reached: its endpoints, mirrors first, and their TLS settings.

Like dockerd (moby registry/service.go, LookupPullEndpoints): configured
``registry-mirrors`` come first, then the registry itself. Unlike dockerd, the
mirrors serve every registry, not only docker.io: a mirror is asked for
``/v2/<repository path>`` whatever the upstream, which is what a pull-through
cache of that upstream (distribution's ``proxy.remoteurl``, ``moor registry
serve --proxy-remote``) answers. A registry named in ``registry-mirrors-by-registry``
(containerd's ``registry.mirrors``) has its own mirrors instead. Pushes never go to
mirrors.

Insecure registries (``insecure-registries``, and 127.0.0.0/8 as in moby's
registry config) are tried over HTTPS without verification, then plain HTTP.
Per-host TLS material follows Docker's certs.d layout (``<dir>/<host:port>/``:
``*.crt`` CAs, ``*.cert`` + ``*.key`` client pairs).

Like dockerd (Go's ProxyFromEnvironment), the daemon's HTTPS_PROXY / HTTP_PROXY carry
registry traffic, except to NO_PROXY's hosts, localhost and loopback addresses.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from moorage.errors import InvalidParameter

DEFAULT_CERTS_DIR = "/etc/moor/certs.d"
# Overrides DEFAULT_CERTS_DIR (tests, rootless setups), as DOCKER_CERT_PATH does for the CLI.
CERTS_DIR_ENV = "MOOR_CERTS_D"
DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()  # host[:port] names or CIDRs, daemon.json's form
    certs_dir: str = DEFAULT_CERTS_DIR
    by_registry: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_daemon(cls, mirrors: tuple[str, ...], insecure: tuple[str, ...],
                    by_registry: dict[str, tuple[str, ...]] | None = None) -> RegistryConfig:
        for mirror in (*mirrors, *(m for own in (by_registry or {}).values() for m in own)):
            parts = urlsplit(mirror)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidParameter(f"invalid mirror: {mirror!r} is not a valid URI")
        return cls(mirrors, insecure, os.environ.get(CERTS_DIR_ENV) or DEFAULT_CERTS_DIR,
                   dict(by_registry or {}))

    def mirrors_of(self, domain: str) -> tuple[str, ...]:
        return self.by_registry.get(domain, self.mirrors)


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # host[:port]: the certs.d directory name
    mirror: bool
    verify: bool  # verify the server's certificate (off for insecure registries)


def endpoints(domain: str, config: RegistryConfig, *, pull: bool) -> list[Endpoint]:
    """The endpoints to try for ``domain``, in order."""
    found: list[Endpoint] = []
    if pull:
        for mirror in config.mirrors_of(domain):
            parts = urlsplit(mirror)
            found.append(Endpoint(mirror.rstrip("/"), parts.netloc, True,
                                  not is_insecure(parts.netloc, config)))
    host = _DOCKER_HUB_API if domain == DOCKER_HUB else domain
    if is_insecure(host, config):
        found += [Endpoint(f"https://{host}", host, False, False),
                  Endpoint(f"http://{host}", host, False, False)]
    else:
        found.append(Endpoint(f"https://{host}", host, False, True))
    return found


def login_endpoints(server: str, config: RegistryConfig) -> list[Endpoint]:
    """Endpoints for POST /auth's ``serveraddress`` (a host, or a URL as the CLI may send)."""
    host = urlsplit(server).netloc if "://" in server else server.split("/")[0]
    if host in ("", "index.docker.io", DOCKER_HUB):
        host = DOCKER_HUB
    return endpoints(host, config, pull=False)


def is_insecure(host: str, config: RegistryConfig) -> bool:
    if host in config.insecure:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if address in _LOOPBACK:
        return True
    for entry in config.insecure:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def proxy_for(url: str) -> str | None:
    """The proxy a request to ``url`` goes through, from the environment, or None."""
    from urllib.request import proxy_bypass_environment

    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or proxy_bypass_environment(host):
        return None
    name = "https_proxy" if parts.scheme == "https" else "http_proxy"
    proxy = os.environ.get(name.upper()) or os.environ.get(name)
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def ssl_context(endpoint: Endpoint, certs_dir: str) -> ssl.SSLContext | None:
    """The TLS context for an https endpoint: system CAs plus certs.d's, and a client
    certificate when one is there; None for plain HTTP."""
    if not endpoint.url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    if not endpoint.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = os.path.join(certs_dir, endpoint.host)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return context
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".crt"):
            context.load_verify_locations(cafile=path)
        elif name.endswith(".cert"):
            key = path[: -len(".cert")] + ".key"
            if not os.path.exists(key):
                raise InvalidParameter(f"missing key {key} for client certificate {path}")
            context.load_cert_chain(path, key)
    return context
