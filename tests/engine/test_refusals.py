"""What the engine cannot do yet is refused with a clear error, never accepted and ignored.

Where dockerd refuses the same thing (a network that does not exist) the docker
CLI's output is compared with the reference dockerd's in the same test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import MOORD, Daemon, poll, start_daemon, stop_daemon
from peers import dockerd_available, start_dockerd, stop_dockerd

from moorage.daemon.containers.refusals import apparmor_enabled, selinux_enabled
from moorage.devkit import busybox

IMAGE = "busybox:latest"


@pytest.fixture(scope="module")
def daemons() -> Iterator[tuple[Daemon, object | None, Path]]:
    """moord, and dockerd when installed, both with the busybox image."""
    with tempfile.TemporaryDirectory(prefix="moor-refusals-") as base:
        root = Path(base)
        busybox.build_rootfs(str(root / "rootfs"))
        tar = subprocess.run(["tar", "-C", str(root / "rootfs"), "-c", "."],
                             capture_output=True, check=True).stdout
        (root / "moord").mkdir()
        moord = start_daemon(str(root / "moord"))
        dockerd = None
        try:
            moord.docker("import", "-", IMAGE, input=tar, check=True)
            if dockerd_available():
                (root / "dockerd").mkdir()
                dockerd = start_dockerd(str(root / "dockerd"))
                dockerd.docker("import", "-", IMAGE, input=tar, check=True)
            yield moord, dockerd, root
        finally:
            for daemon in (moord, dockerd):
                if daemon is not None:
                    leftovers = daemon.docker("ps", "-aq").stdout.decode().split()
                    if leftovers:
                        daemon.docker("rm", "-f", *leftovers)
            if dockerd is not None:
                stop_dockerd(dockerd)
                # dockerd 20.10 leaves its default netns bound under its exec-root.
                subprocess.run(["umount", "-l", str(root / "dockerd/exec/netns/default")],
                               capture_output=True, check=False)
            stop_daemon(moord)


def _first_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode().strip().splitlines()[0] if result.stderr.strip() else ""


def test_network_that_does_not_exist_like_dockerd(daemons: tuple) -> None:
    """dockerd creates the container and refuses to start it: 404, the container stays."""
    moord, dockerd, _ = daemons
    name = f"n-{uuid.uuid4().hex[:8]}"
    views = []
    for daemon in (moord, dockerd) if dockerd is not None else (moord,):
        run = daemon.docker("run", "--name", name, "--network", "n1", IMAGE, "true")
        status = daemon.docker("inspect", "-f", "{{.State.Status}}", name)
        start = daemon.docker("start", name)
        daemon.docker("rm", "-f", name)
        views.append((run.returncode, _first_line(run), status.stdout.strip(),
                      start.returncode, _first_line(start)))
    assert views[0] == (125, "docker: Error response from daemon: network n1 not found",
                        b"created", 1, "Error response from daemon: network n1 not found")
    assert views[0] == views[-1]


@pytest.mark.parametrize("mode", ["default", "bridge", "none", "host"])
def test_network_modes_that_run(daemons: tuple, mode: str) -> None:
    moord, _, _ = daemons
    r = moord.docker("run", "--rm", "--network", mode, IMAGE, "true")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--log-opt", "tag=web"], "log option 'tag' of the json-file log driver is not "
     "supported yet"),
    (["--log-driver", "syslog"], 'error looking up logging plugin syslog: plugin "syslog" '
     "not found"),
    (["--link", "other:alias"], "legacy container links (--link) on the default bridge network "
     "are not supported yet"),
])
def test_refused_until_it_works(daemons: tuple, args: list[str], words: str) -> None:
    moord, _, _ = daemons
    r = moord.docker("create", *args, IMAGE, "true")
    assert r.returncode == 1, r.stdout
    assert words in _first_line(r)


@pytest.mark.skipif(apparmor_enabled() or selinux_enabled(),
                    reason="the host confines with AppArmor or SELinux")
def test_security_options_without_apparmor_or_selinux(daemons: tuple) -> None:
    moord, _, _ = daemons
    for option, words in (("apparmor=docker-default", "AppArmor is not enabled on this host"),
                          ("label=type:svirt_t", "SELinux is not enabled on this host"),
                          ("label=level:s0:c1", "SELinux is not enabled on this host")):
        r = moord.docker("create", "--security-opt", option, IMAGE, "true")
        assert r.returncode == 1
        assert f'invalid --security-opt: "{option}": {words}' in _first_line(r)
    # Asking for no confinement is what the container gets here: honoured.
    for option in ("apparmor=unconfined", "label=disable"):
        r = moord.docker("run", "--rm", "--security-opt", option, IMAGE, "true")
        assert r.returncode == 0, r.stderr


def test_daemon_json_log_opts_checked_at_start(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"log-opts": {"max-size": "10m", "labels": "a"}}))
    r = subprocess.run([MOORD, "--config-file", str(config), "--data-root", str(tmp_path / "d"),
                        "--exec-root", str(tmp_path / "e"),
                        "-H", f"unix://{tmp_path / 'moord.sock'}"],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stderr.decode() == (
        "moord: unable to configure the daemon: failed to set log opts: log option 'labels' "
        "of the json-file log driver is not supported yet\n")
    assert not os.path.exists(tmp_path / "moord.sock")


def _moord(base: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    """A moord that is expected to refuse to start: its exit status and stderr."""
    return subprocess.run([MOORD, "--config-file", os.devnull, "--data-root", str(base / "d"),
                           *args], capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: os.umask(umask))


def test_a_second_daemon_never_takes_over(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    first = start_daemon(str(tmp_path / "first"))
    try:
        same_root = _moord(tmp_path / "second", "--exec-root", first.exec_root,
                           "-H", f"unix://{tmp_path / 'other.sock'}")
        pidfile = os.path.join(first.exec_root, "moord.pid")
        assert (same_root.returncode, same_root.stderr.decode()) == (
            1, f"moord: pid file found, ensure moord is not running or delete {pidfile}\n")
        same_socket = _moord(tmp_path / "third", "--exec-root", str(tmp_path / "third-exec"),
                             "-H", first.host)
        assert same_socket.returncode == 1
        assert (f"moord: another daemon is listening on {first.socket}: stop it first"
                in same_socket.stderr.decode())
        version = first.docker("version", "--format", "{{.Server.Os}}")
        assert version.stdout == b"linux\n", "the first daemon lost its socket"
    finally:
        stop_daemon(first)
    assert not os.path.exists(pidfile)


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def test_socket_private_from_the_start_and_stale_file_replaced(tmp_path: Path) -> None:
    sock_dir = tmp_path / "run" / "moor"
    sock_dir.mkdir(parents=True)
    stale = sock_dir / "moord.sock"
    leftover = socket.socket(socket.AF_UNIX)  # bound, then closed: a stale file
    leftover.bind(str(stale))
    leftover.close()
    (tmp_path / "d").mkdir()
    env_umask = os.umask(0)
    try:
        daemon = start_daemon(str(tmp_path / "d"), "-H", f"unix://{stale}")
    finally:
        os.umask(env_umask)
    try:
        # start_daemon waits for the data-root's socket; this one may come a moment later.
        assert poll(lambda: _listening(stale))
        assert oct(stale.stat().st_mode & 0o777) == "0o660"
        assert daemon.docker("version", "--format", "{{.Server.Os}}").stdout == b"linux\n"
        assert [p.name for p in sock_dir.iterdir()] == ["moord.sock"]  # no staging left
    finally:
        stop_daemon(daemon)
    # Folders moord makes for its socket are 0755 even under umask 0.
    fresh = tmp_path / "fresh" / "a" / "moord.sock"
    (tmp_path / "e").mkdir()
    os.umask(0)
    try:
        daemon = start_daemon(str(tmp_path / "e"), "-H", f"unix://{fresh}")
    finally:
        os.umask(env_umask)
    try:
        assert poll(lambda: _listening(fresh))
        assert [oct(p.stat().st_mode & 0o777) for p in (fresh.parent.parent, fresh.parent)] \
            == ["0o755", "0o755"]
    finally:
        stop_daemon(daemon)


def test_tls_without_client_verification_warns_like_dockerd(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    host = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    (tmp_path / "d").mkdir()
    daemon = start_daemon(str(tmp_path / "d"), "-H", host, "--tls", "--tlscert", str(cert),
                          "--tlskey", str(key))
    try:
        assert ("Binding to IP address without --tlsverify is insecure and gives root access "
                f"on this machine to everyone who has access to your network. host={host}"
                in daemon.log())
    finally:
        stop_daemon(daemon)


# Read-only commands of swarm mode and plugins: dockerd on a node in no swarm answers
# them as moord must. (Never `swarm init` on dockerd, nor `search` anywhere: it would
# ask Docker Hub.)
_SWARM_AND_PLUGINS = (["node", "ls"], ["service", "ls"], ["secret", "ls"], ["config", "ls"],
                      ["swarm", "leave"], ["swarm", "unlock-key"], ["plugin", "ls"],
                      ["plugin", "inspect", "nosuch"], ["service", "ps", "x"])


def test_swarm_and_plugins_answer_as_dockerd_outside_a_swarm(daemons: tuple) -> None:
    moord, dockerd, _ = daemons
    for args in _SWARM_AND_PLUGINS:
        views = [(r.returncode, r.stdout, r.stderr) for r in
                 (daemon.docker(*args) for daemon in (moord, dockerd) if daemon is not None)]
        assert views[0] == views[-1], (args, views)
    joined = moord.docker("swarm", "init")
    assert (joined.returncode, joined.stderr) == (
        1, b"Error response from daemon: swarm mode is not supported by moorage\n")
    searched = moord.docker("search", "busybox")
    assert searched.returncode == 1 and b"docker search) is not supported by moorage" \
        in searched.stderr
