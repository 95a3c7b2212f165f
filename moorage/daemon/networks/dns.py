"""The embedded DNS server of user-defined networks, at 127.0.0.11 in each container.

As dockerd's: a UDP socket bound to 127.0.0.11:53 inside the container's own network
namespace (opened there by a worker thread, then served by the daemon's event loop),
so it answers only that container and knows who asks. Container names, short IDs and
network aliases of the running containers on the networks the asker shares resolve
to their addresses there, several in turn (round-robin); every other name is passed
to the container's upstream resolvers (--dns, else the host's) from the host's
namespace. The messages are read and written here (one question, A records): the
server answers one kind of query and each microsecond is on every name lookup.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import threading
from collections.abc import Callable, Sequence

from moorage.daemon.networks import netns

ADDRESS = "127.0.0.11"
_TTL = 600
_FORWARD_SECONDS = 4.0
_TYPE_A = 1
_CLASS_IN = 1
_SERVFAIL = 2

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
        question = parse_question(data)
        if question is None:  # malformed: no answer, as from any server
            return
        name, qtype, end = question
        addresses = self.lookup(container_id, name)
        if addresses is None:
            threading.Thread(target=_forward, args=(data, sock, source, upstreams),
                             daemon=True).start()
            return
        if qtype != _TYPE_A:
            addresses = []  # a name we know, with no other records (no IPv6)
        elif addresses:
            start = next(self._turn) % len(addresses)
            addresses = addresses[start:] + addresses[:start]
        try:
            sock.sendto(answer(data, end, addresses), source)
        except OSError:
            pass


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
    question = parse_question(data)
    if question is not None:
        try:
            sock.sendto(answer(data, question[2], [], _SERVFAIL), source)
        except OSError:
            pass
