"""docker cp into a container, the body read straight from the socket (api/rawrequest.py).

moord's handler takes a chunked PUT archive body over from aiohttp wherever aiohttp's
parser happened to be when the handler started: these tests send the body cut at each
kind of place (between chunks, inside a size line, inside data, inside the CRLF after
it), wait for the handler, send the rest, then use the same connection again. The same
bytes go to the reference dockerd; both must unpack the same files. Then what must
not break the daemon or leak its fds: a bad tar found part way, a client gone part way,
a body for a container that does not exist.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator

import pytest
from comparekit import Pair, daemon_pair
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
IMAGE = "busybox:latest"
CHUNK = 1000  # every chunk but the last: size line b"3e8\r\n", data, CRLF
STRIDE = 5 + CHUNK + 2


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-cpin-", IMAGE, busybox_tar) as pair:
        yield pair


@pytest.fixture(scope="module")
def container(pair: Pair) -> Iterator[str]:
    name = f"cpin-{uuid.uuid4().hex[:8]}"
    for result in pair.both("run", "-d", "--name", name, IMAGE, "sleep", "600"):
        assert result.returncode == 0, result.stderr
    yield name
    pair.both("rm", "-f", name)


def make_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def chunked(data: bytes, size: int) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (len(data[at:at + size]), data[at:at + size])
              for at in range(0, len(data), size)]
    return b"".join(pieces) + b"0\r\n\r\n"


FILES = {"dir/big": os.urandom(300_000), "dir/small": b"small\n",
         "other": os.urandom(70_001)}
TAR = make_tar(FILES)


def head(container: str, path: str) -> bytes:
    return (f"PUT /containers/{container}/archive?path={path} HTTP/1.1\r\nHost: engine\r\n"
            "Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n").encode()


def answer(client: socket.socket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(client)
    response.begin()
    return response.status, response.read()


def put_in_two(socket_path: str, container: str, path: str, body: bytes, cut: int
               ) -> tuple[int, bytes, int, bytes]:
    """The head and body[:cut], a pause for the handler, the rest; then a ping on the
    same connection: (status, body) of both."""
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(socket_path)
        client.sendall(head(container, path) + body[:cut])
        time.sleep(0.3)
        client.sendall(body[cut:])
        status, data = answer(client)
        client.sendall(b"GET /_ping HTTP/1.1\r\nHost: engine\r\n\r\n")
        ping_status, ping = answer(client)
    return status, data, ping_status, ping


def sums(pair: Pair, container: str, path: str) -> list[list[str]]:
    found = []
    for result in pair.both("exec", container, "sh", "-c",
                            f"cd {path} && sha256sum dir/big dir/small other"):
        assert result.returncode == 0, result.stderr
        found.append(result.stdout.decode().split()[::2])
    return found


EXPECTED = [hashlib.sha256(FILES[n]).hexdigest() for n in ("dir/big", "dir/small", "other")]
# Where aiohttp's parser stops when the handler claims the rest, in the 6th chunk.
CUTS = {"no body yet": 0, "between chunks": 5 * STRIDE, "in a size line": 5 * STRIDE + 2,
        "before a size line's LF": 5 * STRIDE + 4, "at a chunk's data": 5 * STRIDE + 5,
        "in a chunk's data": 5 * STRIDE + 505, "before the CRLF after data": 5 * STRIDE + 1005,
        "before the LF after data": 5 * STRIDE + 1006}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_body_taken_over_wherever_the_parser_stopped(pair: Pair, container: str,
                                                     cut: int) -> None:
    path = f"/tmp/cut{cut}"
    pair.same("exec", container, "mkdir", "-p", path)
    body = chunked(TAR, CHUNK)
    for daemon in (pair.moord, pair.dockerd):
        status, data, ping_status, ping = put_in_two(daemon.socket, container, path, body,
                                                     cut)
        assert (status, ping_status, ping) == (200, 200, b"OK"), (daemon, data)
    assert sums(pair, container, path) == [EXPECTED, EXPECTED]


@pytest.mark.parametrize("size", [len(TAR), 7], ids=["one chunk", "tiny chunks"])
def test_body_in_unusual_chunks(pair: Pair, container: str, size: int) -> None:
    """One chunk larger than what the parser may be handed to end it (the body comes
    the usual way), and chunks of 7 bytes."""
    path = f"/tmp/size{size}"
    pair.same("exec", container, "mkdir", "-p", path)
    body = chunked(TAR, size)
    for daemon in (pair.moord, pair.dockerd):
        status, data, ping_status, _ = put_in_two(daemon.socket, container, path, body, 3000)
        assert (status, ping_status) == (200, 200), (daemon, data)
    assert sums(pair, container, path) == [EXPECTED, EXPECTED]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_what_must_not_break_the_daemon(pair: Pair, container: str) -> None:
    moord = pair.moord
    pid = moord.process.pid
    pair.same("exec", container, "mkdir", "-p", "/tmp/bad")
    fds = open_fds(pid)
    # A tar refused at its first entry, the rest of the body still to come: the answer
    # is Docker's and comes at once; the rest is read and dropped, so that the client
    # can send it all (no broken pipe), and then the connection closes.
    hostile = chunked(make_tar({"../x": b"x", "dir/big": FILES["dir/big"]}), CHUNK)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(moord.socket)
        client.sendall(head(container, "/tmp/bad") + hostile[:20_000])
        status, data = answer(client)
        assert status == 400 and b"outside the extraction point" in data, data
        client.sendall(hostile[20_000:])
        assert client.recv(1) == b""
    # Refused at its last entry, the whole body read: the connection goes on.
    hostile = chunked(make_tar({"dir/big": FILES["dir/big"], "../x": b"x"}), CHUNK)
    status, data, ping_status, _ = put_in_two(moord.socket, container, "/tmp/bad", hostile,
                                              20_000)
    assert (status, ping_status) == (400, 200), data
    # A client gone part way through.
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(moord.socket)
        client.sendall(head(container, "/tmp/bad") + chunked(TAR, CHUNK)[:50_000])
        time.sleep(0.3)
    # A container that does not exist: its body is read and the connection goes on.
    body = chunked(TAR, CHUNK)
    status, data, ping_status, _ = put_in_two(moord.socket, "nosuch", "/tmp", body, 20_000)
    assert (status, ping_status) == (404, 200) and b"No such container: nosuch" in data
    deadline = time.monotonic() + 10
    while open_fds(pid) != fds and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(pid) == fds
    path = "/tmp/after"
    pair.same("exec", container, "mkdir", "-p", path)
    status, _, _, _ = put_in_two(moord.socket, container, path, body, 20_000)
    assert status == 200
    assert moord.docker("exec", container, "cat", f"{path}/dir/small").stdout == b"small\n"


def test_bodiless_puts(pair: Pair, container: str) -> None:
    # aiohttp gives every bodiless request one shared reader, which answers without
    # waiting once any request has read its end: the second such PUT held moord's loop.
    def put(socket_path: str, length: str) -> tuple[int, bytes]:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(10)
            client.connect(socket_path)
            client.sendall(f"PUT /containers/{container}/archive?path=/tmp HTTP/1.1\r\n"
                           f"Host: engine\r\n{length}\r\n".encode())
            return answer(client)

    for length in ("Content-Length: 0\r\n", "", "Content-Length: 0\r\n"):
        answers = pair.each(lambda d, length=length: put(d.socket, length))
        assert answers[0] == answers[1], answers
