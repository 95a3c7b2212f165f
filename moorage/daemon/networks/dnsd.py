"""The embedded DNS's process: it answers every container's server (the sockets the
daemon opened in their namespaces and sent here), off the daemon's GIL.

    python -m moorage.daemon.networks.dnsd CHANNEL_FD COUNTER_FD

On the channel (a SOCK_SEQPACKET pair, JSON messages) the daemon says `attach` (with
the socket as SCM_RIGHTS) and `detach`, and answers the `ask` of a name this process
does not know yet with `told` (its addresses, or null for a name no container has).
What it was told is kept until the daemon's counter (8 bytes of shared memory)
moves: a changed counter means a container, alias or network changed, so the
next query of each name asks again. The channel's end (the daemon gone) ends it.
"""

from __future__ import annotations

import itertools
import json
import logging
import mmap
import selectors
import socket
import struct
import sys
import threading
from dataclasses import dataclass

from moorage.daemon.networks.dns import (
    NXDOMAIN,
    TYPE_A,
    Upstream,
    answer,
    forward,
    parse_question,
    send,
)

log = logging.getLogger("moord.dns")

_MESSAGE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class _Server:
    container_id: str
    sock: socket.socket
    namespace: str
    upstreams: list[Upstream]


@dataclass(frozen=True, slots=True)
class _Pending:
    server: _Server
    data: bytes
    source: tuple
    name: str
    qtype: int
    end: int
    generation: int


class Process:
    def __init__(self, channel: socket.socket, counter: mmap.mmap) -> None:
        self.channel = channel
        self.counter = counter
        self.selector = selectors.DefaultSelector()
        self.selector.register(channel, selectors.EVENT_READ)
        self.servers: dict[str, _Server] = {}
        self.known: dict[tuple[str, str], list[str] | None] = {}
        self.generation = 0
        self.pending: dict[int, _Pending] = {}
        self.seq = itertools.count()
        self.turn = itertools.count()

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.channel:
                    if not self._from_daemon():
                        return
                    continue
                try:
                    self._query(key.data)
                except Exception:  # one query's failure must not end every server
                    log.exception("embedded DNS: a query of container %s failed",
                                  key.data.container_id)

    def _from_daemon(self) -> bool:
        try:
            data, ancillary, _, _ = self.channel.recvmsg(
                _MESSAGE_SIZE, socket.CMSG_SPACE(struct.calcsize("i")))
        except BlockingIOError:
            return True
        if not data:
            return False
        message = json.loads(data)
        fds = [struct.unpack_from("i", cdata)[0] for level, kind, cdata in ancillary
               if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
        if message["op"] == "attach":
            self._attach(message, fds[0])
        elif message["op"] == "detach":
            server = self.servers.pop(message["id"], None)
            if server is not None:
                self.selector.unregister(server.sock)
                server.sock.close()
        elif message["op"] == "told":
            self._told(message)
        return True

    def _attach(self, message: dict, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        old = self.servers.pop(message["id"], None)
        if old is not None:
            self.selector.unregister(old.sock)
            old.sock.close()
        server = _Server(message["id"], sock, message["namespace"],
                         [Upstream(address, from_host)
                          for address, from_host in message["upstreams"]])
        self.servers[server.container_id] = server
        self.selector.register(sock, selectors.EVENT_READ, server)

    def _current_generation(self) -> int:
        generation = struct.unpack_from("=Q", self.counter)[0]
        if generation != self.generation:
            self.known.clear()
            self.generation = generation
        return generation

    def _query(self, server: _Server) -> None:
        try:
            data, source = server.sock.recvfrom(4096)
        except OSError:
            return
        question = parse_question(data)
        if question is None:  # malformed: no answer, as from any server
            return
        name, qtype, end = question
        generation = self._current_generation()
        key = (server.container_id, name)
        if key in self.known:
            self._answer(server, data, source, name, qtype, end, self.known[key])
            return
        seq = next(self.seq)
        try:
            self.channel.sendmsg([json.dumps({"op": "ask", "seq": seq, "id": server.container_id,
                                              "name": name}).encode()])
        except BlockingIOError:
            # The daemon has more questions than it answered yet: this query goes
            # unanswered, as a datagram may (the client asks again). Never blocking
            # here, the daemon's answers are always read.
            return
        self.pending[seq] = _Pending(server, data, source, name, qtype, end, generation)

    def _told(self, message: dict) -> None:
        pending = self.pending.pop(message["seq"], None)
        if pending is None:
            return
        addresses = message["addresses"]
        # Told before a change the counter shows now: answered, not kept.
        if self._current_generation() == pending.generation:
            self.known[(pending.server.container_id, pending.name)] = addresses
        if pending.server.container_id in self.servers:
            self._answer(pending.server, pending.data, pending.source, pending.name,
                         pending.qtype, pending.end, addresses)

    def _answer(self, server: _Server, data: bytes, source: tuple, name: str, qtype: int,
                end: int, addresses: list[str] | None) -> None:
        if addresses is None and "." not in name:
            send(server.sock, answer(data, end, [], NXDOMAIN), source)
            return
        if addresses is None:
            threading.Thread(target=forward, args=(data, server.sock, source,
                                                   server.namespace, server.upstreams),
                             daemon=True).start()
            return
        if qtype != TYPE_A:
            addresses = []  # a name we know, with no other records (no IPv6)
        elif addresses:
            start = next(self.turn) % len(addresses)
            addresses = addresses[start:] + addresses[:start]
        send(server.sock, answer(data, end, addresses), source)


def main(argv: list[str]) -> int:
    logging.basicConfig(format="moord-dns: %(message)s")
    channel = socket.socket(fileno=int(argv[1]))
    channel.setblocking(False)
    with open(int(argv[2]), "r+b") as counter_file:
        counter = mmap.mmap(counter_file.fileno(), struct.calcsize("=Q"))
    Process(channel, counter).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
