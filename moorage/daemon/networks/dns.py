"""The embedded DNS server of user-defined networks, at 127.0.0.11 in each container.

As dockerd's: a UDP socket bound to 127.0.0.11:53 inside the container's own network
namespace (opened there by a worker thread, then served by the daemon's event loop),
so it answers only that container and knows who asks. Container names, short IDs and
network aliases of the running containers on the networks the asker shares resolve
to their addresses there, several in turn (round-robin); every other name is passed
to the container's upstream resolvers (--dns, else the host's) from the host's
namespace.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Sequence

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from moorage.daemon.networks import netns

log = logging.getLogger("moord.dns")
ADDRESS = "127.0.0.11"
_TTL = 600
_FORWARD_SECONDS = 4.0

Lookup = Callable[[str, str], list[str] | None]


def host_resolv_conf() -> list[str]:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read().splitlines()
    except OSError:
        return []


def upstreams(dns_servers: Sequence[str]) -> list[str]:
    """Where the embedded DNS sends the names it does not know: --dns, else the host's
    resolvers (localhost ones too: it asks from the host's namespace)."""
    return list(dns_servers) or [line.split()[1] for line in host_resolv_conf()
                                 if line.startswith("nameserver") and len(line.split()) > 1]


class Resolver:
    def __init__(self, lookup: Lookup) -> None:
        """`lookup(container_id, name)`: the addresses of `name` for that container,
        None for a name it does not know."""
        self.lookup = lookup
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sockets: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def attach(self, container_id: str, namespace: str, upstreams: list[str]) -> None:
        """Blocking: the server in the namespace for the container (once)."""
        with self._lock:
            if container_id in self._sockets:
                return
        with netns.entered(namespace):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((ADDRESS, 53))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        with self._lock:
            self._sockets[container_id] = sock
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.add_reader, sock.fileno(), self._query,
                                       container_id, sock, upstreams)

    def detach(self, container_id: str) -> None:
        with self._lock:
            sock = self._sockets.pop(container_id, None)
        if sock is None or self.loop is None:
            return

        def close() -> None:
            self.loop.remove_reader(sock.fileno())  # type: ignore[union-attr]
            sock.close()
        self.loop.call_soon_threadsafe(close)

    def _query(self, container_id: str, sock: socket.socket, upstreams: list[str]) -> None:
        try:
            data, source = sock.recvfrom(4096)
        except OSError:
            return
        try:
            query = dns.message.from_wire(data)
            question = query.question[0]
        except Exception:  # a malformed query gets no answer, as from any server
            return
        name = question.name.to_text(omit_final_dot=True).lower()
        addresses = self.lookup(container_id, name)
        if addresses is None:
            threading.Thread(target=_forward, args=(data, sock, source, upstreams),
                             daemon=True).start()
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if question.rdtype == dns.rdatatype.A and addresses:
            start = next(self._turn) % len(addresses)
            turned = addresses[start:] + addresses[:start]
            response.answer.append(dns.rrset.from_text_list(
                question.name, _TTL, "IN", "A", turned))
        try:
            sock.sendto(response.to_wire(), source)
        except OSError:
            pass


def _forward(data: bytes, sock: socket.socket, source: tuple, upstreams: list[str]) -> None:
    """The query to each upstream in turn until one answers; SERVFAIL without any."""
    for server in upstreams:
        with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                           socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(_FORWARD_SECONDS)
            try:
                upstream.sendto(data, (server, 53))
                reply = upstream.recv(65535)
            except OSError:
                continue
        try:
            sock.sendto(reply, source)
        except OSError:
            pass
        return
    try:
        response = dns.message.make_response(dns.message.from_wire(data))
        response.set_rcode(dns.rcode.SERVFAIL)
        sock.sendto(response.to_wire(), source)
    except Exception:
        log.debug("no answer for a forwarded query")
