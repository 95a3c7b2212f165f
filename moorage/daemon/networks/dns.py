"""The embedded DNS server of user-defined networks, at 127.0.0.11 in each container.

As dockerd's: a UDP socket bound to 127.0.0.11:53 inside the container's own network
namespace (opened there by a worker thread, then served by a thread of the resolver's),
so it answers only that container and knows who asks. Container names, short IDs and
network aliases of the running containers on the networks the asker shares resolve
to their addresses there, several in turn (round-robin). A single-label name it does
not know gets NXDOMAIN at once and never leaves the container: a bare name is a
container's or nobody's, and passing it on would leak local names to the host's
resolvers (dockerd forwards it, and the answer a client sees is the upstream's
NXDOMAIN). Every other name is passed to the container's upstream resolvers as
dockerd 20.10 does: --dns servers, and the host's, are asked from the container's own
namespace (so `--dns 127.0.0.1` is the container's loopback), only the host's
loopback resolvers from the host's namespace. The messages are read and written here
(one question, A records): the server answers one kind of query and each
microsecond is on every name lookup.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from moorage.daemon.networks import netns

log = logging.getLogger("moord.networks")

ADDRESS = "127.0.0.11"
_TTL = 600
_FORWARD_SECONDS = 4.0
_TYPE_A = 1
_CLASS_IN = 1
_SERVFAIL = 2
_NXDOMAIN = 3

Lookup = Callable[[str, str], list[str] | None]


@dataclass(frozen=True, slots=True)
class Upstream:
    address: str
    from_host: bool   # asked from the daemon's namespace, not the container's


def host_resolv_conf() -> list[str]:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read().splitlines()
    except OSError:
        return []


def upstreams(dns_servers: Sequence[str]) -> list[Upstream]:
    """Where the embedded DNS sends the dotted names it does not know: --dns, else the
    host's resolvers (its localhost ones asked from the host's namespace)."""
    if dns_servers:
        return [Upstream(server, False) for server in dns_servers]
    return [Upstream(server, ipaddress.ip_address(server).is_loopback)
            for server in (line.split()[1] for line in host_resolv_conf()
                           if line.startswith("nameserver") and len(line.split()) > 1)
            if _is_address(server)]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Resolver:
    """The servers of every container, answered by one thread of their own: not the
    event loop, whose callbacks (a start's API requests, events, state writes) made a
    lookup wait behind them (p99 0.3-1.1 ms while containers start, vs dockerd's
    0.06-0.14 ms, measured), nor one thread hop per query."""

    def __init__(self, lookup: Lookup) -> None:
        """`lookup(container_id, name)`: the addresses of `name` for that container,
        None for a name it does not know."""
        self.lookup = lookup
        self._sockets: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._selector = selectors.DefaultSelector()
        # Sockets detached, closed by the serving thread (so that it never reads an fd
        # number a close gave to another file meanwhile), woken by a byte in the pipe.
        self._closing: list[socket.socket] = []
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._thread: threading.Thread | None = None

    def attach(self, container_id: str, namespace: str, upstreams: list[Upstream]) -> None:
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
            self._selector.register(sock, selectors.EVENT_READ,
                                    (container_id, namespace, upstreams))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="embedded-dns",
                                                daemon=True)
                self._thread.start()

    def detach(self, container_id: str) -> None:
        with self._lock:
            sock = self._sockets.pop(container_id, None)
            if sock is None:
                return
            self._closing.append(sock)
        os.write(self._wake_write, b"x")

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fd == self._wake_read:
                    self._close_detached()
                    continue
                container_id, namespace, upstreams = key.data
                try:
                    self._query(container_id, key.fileobj, namespace, upstreams)
                except Exception:  # one query's failure must not end every server
                    log.exception("embedded DNS: a query of container %s failed", container_id)

    def _close_detached(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        with self._lock:
            closing, self._closing = self._closing, []
            for sock in closing:
                self._selector.unregister(sock)
                sock.close()

    def _query(self, container_id: str, sock: socket.socket, namespace: str,
               upstreams: list[Upstream]) -> None:
        try:
            data, source = sock.recvfrom(4096)
        except OSError:
            return
        question = parse_question(data)
        if question is None:  # malformed: no answer, as from any server
            return
        name, qtype, end = question
        addresses = self.lookup(container_id, name)
        if addresses is None and "." not in name:
            _send(sock, answer(data, end, [], _NXDOMAIN), source)
            return
        if addresses is None:
            threading.Thread(target=_forward, args=(data, sock, source, namespace, upstreams),
                             daemon=True).start()
            return
        if qtype != _TYPE_A:
            addresses = []  # a name we know, with no other records (no IPv6)
        elif addresses:
            start = next(self._turn) % len(addresses)
            addresses = addresses[start:] + addresses[:start]
        _send(sock, answer(data, end, addresses), source)


def parse_question(data: bytes) -> tuple[str, int, int] | None:
    """A standard query's one question: (lower-case name, type, where it ends); None
    for anything else (responses, other opcodes, several questions, compression)."""
    if len(data) < 12:
        return None
    flags, qdcount = struct.unpack_from("!HH", data, 2)
    if flags & 0xF800 or qdcount != 1:  # QR set or an opcode other than QUERY
        return None
    labels, pos = [], 12
    while pos < len(data) and data[pos]:
        size = data[pos]
        if size > 63 or pos + 1 + size > len(data):
            return None
        labels.append(data[pos + 1:pos + 1 + size].decode("ascii", "replace"))
        pos += 1 + size
    if pos + 5 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, pos + 1)
    if qclass != _CLASS_IN:
        return None
    return ".".join(labels).lower(), qtype, pos + 5


def answer(query: bytes, end: int, addresses: list[str], rcode: int = 0) -> bytes:
    """The response to `query` (its question ending at `end`): A records pointing at
    the question's name, recursion available, the client's RD kept."""
    flags = 0x8000 | 0x0080 | (struct.unpack_from("!H", query, 2)[0] & 0x0100) | rcode
    header = struct.pack("!HHHHHH", struct.unpack_from("!H", query)[0], flags, 1,
                         len(addresses), 0, 0)
    records = b"".join(struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, _TTL, 4)
                       + socket.inet_aton(a) for a in addresses)
    return header + query[12:end] + records


def _forward(data: bytes, sock: socket.socket, source: tuple, namespace: str,
             upstreams: list[Upstream]) -> None:
    """The query to each upstream in turn until one answers; SERVFAIL without any."""
    for server in upstreams:
        try:
            upstream = _upstream_socket(server, namespace)
        except OSError:
            continue
        with upstream:
            upstream.settimeout(_FORWARD_SECONDS)
            try:
                upstream.sendto(data, (server.address, 53))
                reply = upstream.recv(65535)
            except OSError:
                continue
        _send(sock, reply, source)
        return
    question = parse_question(data)
    if question is not None:
        _send(sock, answer(data, question[2], [], _SERVFAIL), source)


def _upstream_socket(server: Upstream, namespace: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
    if server.from_host:
        return socket.socket(family, socket.SOCK_DGRAM)
    # This forwarding thread is a worker of its own: it may enter the namespace.
    with netns.entered(namespace):
        return socket.socket(family, socket.SOCK_DGRAM)


def _send(sock: socket.socket, reply: bytes, destination: tuple) -> None:
    try:
        sock.sendto(reply, destination)
    except OSError:
        pass
