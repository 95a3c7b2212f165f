"""The userland proxy of published ports: what the kernel's DNAT cannot take.

IPv4, loopback included, is DNATed by nftables (route_localnet is set on our own
bridges only, guarded by a drop of anything entering them towards 127.0.0.0/8): no
process and no copy. Measured by bench/network.py on 2 cores: a download through
127.0.0.1 costs 0.7 busy CPU-s/GB, within ~10% of one from the container's own
address; docker-proxy (Go's io.Copy: splice(2), non-blocking, 4 MiB at a time, seen
with strace) adds a second TCP connection and a process, 0.9-1.3 CPU-s/GB, which
shows in throughput only once the cores are full (one download leaves a core to it).
What is left is IPv6 (`::`, `::1`, the containers have no IPv6) and holding the port:
every published port has a listener bound on the host as dockerd's, so a port another
program has is refused at once and never taken twice.

Each connection the proxy still sees is relayed by two threads moving bytes with
splice(2) through a 1 MiB pipe, so the data never enters user space; UDP datagrams
are relayed per client by one thread.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import threading
from dataclasses import dataclass, field

_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031
_UDP_IDLE_SECONDS = 30.0


@dataclass
class Listener:
    """One bound socket forwarding to `target`; `close` ends it and its connections."""

    sock: socket.socket
    target: tuple[str, int]
    udp: bool
    _conns: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def start(self) -> None:
        run = self._serve_udp if self.udp else self._serve_tcp
        threading.Thread(target=run, name=f"proxy:{self.target}", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        for conn in (self.sock, *conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sock.close()

    def _track(self, conn: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._conns.add(conn)
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
        conn.close()

    def _serve_tcp(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay_tcp, args=(client,), daemon=True).start()

    def _relay_tcp(self, client: socket.socket) -> None:
        if not self._track(client):
            client.close()
            return
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for conn in (client, upstream):
            # As docker-proxy (Go's default): small writes leave at once.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            upstream.settimeout(10)
            upstream.connect(self.target)
            upstream.settimeout(None)
        except OSError:
            upstream.close()
            self._untrack(client)
            return
        self._track(upstream)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        self._untrack(upstream)
        self._untrack(client)

    def _serve_udp(self) -> None:
        peers: dict[tuple, socket.socket] = {}
        try:
            while True:
                try:
                    data, source = self.sock.recvfrom(65535)
                except OSError:
                    return
                upstream = peers.get(source)
                if upstream is None:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    upstream.connect(self.target)
                    peers[source] = upstream
                    threading.Thread(target=self._udp_replies, args=(upstream, source, peers),
                                     daemon=True).start()
                try:
                    upstream.send(data)
                except OSError:
                    pass
        finally:
            for upstream in list(peers.values()):
                upstream.close()

    def _udp_replies(self, upstream: socket.socket, source: tuple,
                     peers: dict[tuple, socket.socket]) -> None:
        try:
            while select.select([upstream], [], [], _UDP_IDLE_SECONDS)[0]:
                self.sock.sendto(upstream.recv(65535), source)
        except OSError:
            pass
        peers.pop(source, None)
        upstream.close()


def _pump(source: socket.socket, dest: socket.socket) -> None:
    """source → dest through a pipe with splice until source's end; then dest's write
    side is shut so the peer sees the end too."""
    read_end, write_end = os.pipe()
    try:
        # A pipe of _CHUNK bytes: each splice moves up to that much, not 64 KiB.
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _CHUNK)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default size still works
    try:
        while True:
            moved = os.splice(source.fileno(), write_end, _CHUNK)
            if not moved:
                break
            while moved:
                moved -= os.splice(read_end, dest.fileno(), moved)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
        try:
            dest.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def listen(host_ip: str, port: int, udp: bool, target: tuple[str, int]) -> Listener:
    """A listener bound on host_ip:port (OSError when the port is taken), not started."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if not udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        if not udp:
            sock.listen(128)
    except OSError:
        sock.close()
        raise
    return Listener(sock, target, udp)
