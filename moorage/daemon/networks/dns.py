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

import ipaddress
import json
import logging
import mmap
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from moorage.daemon.networks import netns

log = logging.getLogger("moord.networks")

ADDRESS = "127.0.0.11"
_TTL = 600
_FORWARD_SECONDS = 4.0
TYPE_A = 1
_CLASS_IN = 1
_SERVFAIL = 2
NXDOMAIN = 3
_COUNTER_SIZE = 8
_MESSAGE_SIZE = 65536

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
    """The daemon's side of the embedded DNS: the servers' sockets, opened in each
    container's namespace here, are answered by a process of its own
    (moorage.daemon.networks.dnsd), so that a lookup never waits for the daemon's
    GIL while it starts containers (p99 0.6-0.9 ms then in one thread of the daemon,
    vs dockerd's 0.07-0.18 ms, measured). The process keeps what it was told about
    each name until `changed` (a counter in shared memory: no round trip on the
    daemon's paths); a name it was not told about it asks here, once."""

    def __init__(self, lookup: Lookup) -> None:
        """`lookup(container_id, name)`: the addresses of `name` for that container,
        None for a name it does not know."""
        self.lookup = lookup
        self._lock = threading.Lock()
        self._served: dict[str, tuple[socket.socket, str, list[Upstream]]] = {}
        self._generation = 0
        self._counter = mmap.mmap(-1, _COUNTER_SIZE)
        self._channel: socket.socket | None = None
        self._process: subprocess.Popen | None = None

    def attach(self, container_id: str, namespace: str, upstreams: list[Upstream]) -> None:
        """Blocking: the server in the namespace for the container (once)."""
        with self._lock:
            if container_id in self._served:
                return
        with netns.entered(namespace):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((ADDRESS, 53))
        except OSError:
            sock.close()
            raise
        with self._lock:
            self._served[container_id] = (sock, namespace, upstreams)
            self._tell_attach(self._running_channel(), container_id, sock, namespace,
                              upstreams)

    def detach(self, container_id: str) -> None:
        with self._lock:
            served = self._served.pop(container_id, None)
            if served is None:
                return
            if self._channel is not None:
                _tell(self._channel, {"op": "detach", "id": container_id})
        served[0].close()
        self.changed()

    def changed(self) -> None:
        """What a name resolves to may have changed: the server forgets what it knew."""
        with self._lock:
            self._generation += 1
            struct.pack_into("=Q", self._counter, 0, self._generation)

    def close(self) -> None:
        """At the daemon's stop: the server process ends with its channel."""
        with self._lock:
            channel, self._channel = self._channel, None
            process, self._process = self._process, None
            served, self._served = list(self._served.values()), {}
        if channel is not None:
            channel.shutdown(socket.SHUT_RDWR)
        if process is not None:
            process.wait()
        for sock, _, _ in served:
            sock.close()

    def _running_channel(self) -> socket.socket:
        """The server process's channel, started with the first container (the lock
        held)."""
        if self._channel is not None:
            return self._channel
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        counter_fd = os.memfd_create("moord-dns", os.MFD_CLOEXEC)
        os.ftruncate(counter_fd, _COUNTER_SIZE)
        counter = mmap.mmap(counter_fd, _COUNTER_SIZE)
        counter[:] = self._counter[:]
        self._counter = counter
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "moorage.daemon.networks.dnsd", str(theirs.fileno()),
                 str(counter_fd)], pass_fds=(theirs.fileno(), counter_fd),
                stdin=subprocess.DEVNULL)
        os.close(counter_fd)
        self._channel, self._process = ours, process
        threading.Thread(target=self._answer_questions, args=(ours, process),
                         name="embedded-dns", daemon=True).start()
        return ours

    def _answer_questions(self, channel: socket.socket, process: subprocess.Popen) -> None:
        """The names the server was not told about, asked by it; when it ends (it
        should not), a new one gets every server."""
        while True:
            try:
                message = channel.recv(_MESSAGE_SIZE)
            except OSError:
                message = b""
            if not message:
                break
            asked = json.loads(message)
            try:
                addresses = self.lookup(asked["id"], asked["name"])
            except Exception:  # one name's failure must not end every server
                log.exception("embedded DNS: resolving %r failed", asked["name"])
                addresses = None
            _tell(channel, {"op": "told", "seq": asked["seq"], "addresses": addresses})
        process.wait()
        with self._lock:
            channel.close()
            if self._channel is not channel:
                return
            self._channel = self._process = None
            if not self._served:
                return
            log.error("embedded DNS: its process ended (%s); starting another",
                      process.returncode)
            fresh = self._running_channel()
            for container_id, (sock, namespace, upstreams) in self._served.items():
                self._tell_attach(fresh, container_id, sock, namespace, upstreams)

    @staticmethod
    def _tell_attach(channel: socket.socket, container_id: str, sock: socket.socket,
                     namespace: str, upstreams: list[Upstream]) -> None:
        _tell(channel, {"op": "attach", "id": container_id, "namespace": namespace,
                        "upstreams": [[u.address, u.from_host] for u in upstreams]},
              sock.fileno())


def _tell(channel: socket.socket, message: dict, fd: int | None = None) -> None:
    """One message on the channel to or from the server process (a closed channel is
    the reader's to notice)."""
    fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))] if fd is not None else []
    try:
        channel.sendmsg([json.dumps(message).encode()], fds)
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
    records = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, _CLASS_IN, _TTL, 4)
                       + socket.inet_aton(a) for a in addresses)
    return header + query[12:end] + records


def forward(data: bytes, sock: socket.socket, source: tuple, namespace: str,
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
        send(sock, reply, source)
        return
    question = parse_question(data)
    if question is not None:
        send(sock, answer(data, question[2], [], _SERVFAIL), source)


def _upstream_socket(server: Upstream, namespace: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
    if server.from_host:
        return socket.socket(family, socket.SOCK_DGRAM)
    # This forwarding thread is a worker of its own: it may enter the namespace.
    with netns.entered(namespace):
        return socket.socket(family, socket.SOCK_DGRAM)


def send(sock: socket.socket, reply: bytes, destination: tuple) -> None:
    try:
        sock.sendto(reply, destination)
    except OSError:
        pass
