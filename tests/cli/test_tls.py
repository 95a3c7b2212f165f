"""tcp:// with TLS: --tls, --tlsverify, --tlscacert/--tlscert/--tlskey, DOCKER_CERT_PATH and
DOCKER_TLS_VERIFY, through `moor` and `docker` against a TLS front of the engine.

The front is a small mutual-TLS proxy (certificates from a test CA made with openssl)
that relays each connection to the engine's unix socket, as dockerd --tlsverify would.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import Clis

SUBJECTS = {"ca": "/CN=moor test CA", "server": "/CN=localhost", "client": "/CN=client"}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(base: Path) -> Path:
    """ca.pem, server-{cert,key}.pem and the client's cert.pem/key.pem in docker's names."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             SUBJECTS["ca"], "-keyout", str(base / "ca-key.pem"), "-out", str(base / "ca.pem"))
    ext = base / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,"
                   "clientAuth\n")
    for role, cert, key in (("server", "server-cert.pem", "server-key.pem"),
                            ("client", "cert.pem", "key.pem")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", SUBJECTS[role],
                 "-keyout", str(base / key), "-out", str(base / f"{role}.csr"))
        _openssl("x509", "-req", "-in", str(base / f"{role}.csr"), "-CA", str(base / "ca.pem"),
                 "-CAkey", str(base / "ca-key.pem"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(ext), "-out", str(base / cert))
    return base


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener: socket.socket, context: ssl.SSLContext, unix_path: str) -> None:
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # a client without a certificate we trust: refused
            continue
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(unix_path)
        for a, b in ((tls, upstream), (upstream, tls)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


@pytest.fixture
def tls_front(clis: Clis, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(tcp://127.0.0.1:port, folder of certificates) in front of the engine under test."""
    pki = make_pki(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server-cert.pem", pki / "server-key.pem")
    context.load_verify_locations(pki / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, daemon=True, args=(
        listener, context, clis.host.removeprefix("unix://")))
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}", pki
    listener.close()


FMT = "{{.Server.Version}} {{.Server.APIVersion}}"


def test_tlsverify_flags(clis: Clis, tls_front: tuple[str, Path]) -> None:
    host, pki = tls_front
    flags = ["-H", host, "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
             "--tlscert", str(pki / "cert.pem"), "--tlskey", str(pki / "key.pem")]
    ours = clis.moor(*flags, "version", "--format", FMT)
    theirs = clis.docker(*flags, "version", "--format", FMT)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) and \
        ours.returncode == 0, ours.stderr
    ran = clis.moor(*flags, "run", "--rm", "busybox", "echo", "over tls")
    assert ran.stdout == b"over tls\n", ran.stderr


def test_build_context_over_tls(clis: Clis, tls_front: tuple[str, Path],
                                tmp_path: Path) -> None:
    """A large context file is sent by the kernel on a plain socket: over TLS it must
    still go through the encryption."""
    host, pki = tls_front
    context = tmp_path / "context"
    context.mkdir()
    blob = os.urandom(300 << 10)
    (context / "blob").write_bytes(blob)
    (context / "Dockerfile").write_text("FROM busybox\nCOPY blob /blob\n")
    env = {"DOCKER_HOST": host, "DOCKER_CERT_PATH": str(pki), "DOCKER_TLS_VERIFY": "1"}
    built = clis.moor("build", "-q", "-t", "tls-context", str(context), **env)
    assert built.returncode == 0, built.stderr
    try:
        seen = clis.moor("run", "--rm", "tls-context", "md5sum", "/blob", **env)
        assert seen.stdout.split()[0].decode() == hashlib.md5(blob).hexdigest()
    finally:
        clis.moor("rmi", "tls-context", **env)


def test_cert_path_and_verify_from_env(clis: Clis, tls_front: tuple[str, Path]) -> None:
    host, pki = tls_front
    env = {"DOCKER_HOST": host, "DOCKER_CERT_PATH": str(pki), "DOCKER_TLS_VERIFY": "1"}
    ours, theirs = clis.moor("images", "-q", **env), clis.docker("images", "-q", **env)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout != b""
    # --tls alone encrypts without checking the server (the client certificate still goes)
    plain = clis.moor("--tls", "version", "--format", FMT, DOCKER_HOST=host,
                      DOCKER_CERT_PATH=str(pki))
    assert plain.returncode == 0, plain.stderr


def test_refusals_are_one_line(clis: Clis, tls_front: tuple[str, Path],
                               tmp_path: Path) -> None:
    host, _ = tls_front
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other")
    for env, says in (
            ({"DOCKER_CERT_PATH": str(other), "DOCKER_TLS_VERIFY": "1"},
             b"tls: failed to verify certificate: x509: "),
            ({"DOCKER_CERT_PATH": str(tmp_path / "none"), "DOCKER_TLS_VERIFY": "1"},
             f"unable to resolve docker endpoint: open {tmp_path}/none/ca.pem: no such file "
             "or directory\n".encode())):
        ours = clis.moor("version", "--format", FMT, DOCKER_HOST=host, **env)
        theirs = clis.docker("version", "--format", FMT, DOCKER_HOST=host, **env)
        assert ours.returncode == theirs.returncode == 1
        assert says in ours.stderr and says in theirs.stderr, (ours.stderr, theirs.stderr)
        assert ours.stderr.count(b"\n") == 1, ours.stderr
