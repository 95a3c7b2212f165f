"""login/logout: the interactive prompt in a pty, and credentials that the docker CLI
reads and removes (and the other way round)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import MOOR, Clis
from test_terminal import Pty


class _Registry(http.server.BaseHTTPRequestHandler):
    """Distribution's base endpoint only: GET /v2/ answers 200 to any credentials."""

    def do_GET(self) -> None:  # http.server's name for the handler
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def auths(clis: Clis) -> dict[str, dict[str, str]]:
    return json.loads((Path(clis.config) / "config.json").read_text()).get("auths", {})


def test_interactive_login_then_docker_logout(clis: Clis, registry: str) -> None:
    term = Pty([MOOR, "login", registry], clis.env())
    term.expect(b"Username: ")
    term.send(b"bob\r")
    term.expect(b"Password: ")
    term.send(b"s3cret\r")
    assert term.wait() == 0
    assert b"Login Succeeded" in term.seen and b"s3cret" not in term.seen  # not echoed
    assert auths(clis)[registry] == {"auth": base64.b64encode(b"bob:s3cret").decode()}
    again = clis.docker("login", registry)  # docker reuses what moor stored
    assert again.returncode == 0 and b"[Username: bob]" in again.stderr
    assert clis.docker("logout", registry).returncode == 0
    assert registry not in auths(clis)


def test_docker_login_then_moor(clis: Clis, registry: str) -> None:
    done = clis.docker("login", "-u", "amy", "--password-stdin", registry, input=b"pw\n")
    assert done.returncode == 0, done.stderr
    ours = clis.moor("login", registry)
    assert (ours.returncode, ours.stdout) == (0, b"Login Succeeded\n"), ours.stderr
    assert b"Authenticating with existing credentials... [Username: amy]" in ours.stderr
    for cli in (clis.moor, clis.docker):
        out = cli("logout", registry)
        assert out.stdout == f"Removing login credentials for {registry}\n".encode()
    assert registry not in auths(clis)
    for args in (("login", registry), ("login", "--password-stdin", registry)):
        ours, theirs = clis.moor(*args, input=b""), clis.docker(*args, input=b"")
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr == theirs.stderr, (ours.stderr, theirs.stderr)
