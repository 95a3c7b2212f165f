"""`moor machine` with the generic driver, against a second VM booted bare from the
cached machine image: systemd and sshd, no moorage and no engine, reached over SSH on
its forwarded port on 127.0.0.1 as a user who is not root (the driver's `sudo -n`
path); the driver installs moord.service and systemd keeps it up, or, with /run/systemd
hidden, its restart loop does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon
from machinekit import BARE_USER, MOOR, Bare, Env, bare_vm, free

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds the image as root (mmdebstrap)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu not installed"),
]

NAME = f"mg{os.getpid()}"


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    yield from bare_vm(tmp_path_factory.mktemp("bare"))


def _create(env: Env, bare: Bare, *extra: str, name: str = NAME, key: str | None = None,
            port: int | None = None, user: str = BARE_USER) -> subprocess.CompletedProcess[str]:
    return env.moor("machine", "create", "--driver", "generic", "--generic-ip-address",
                    "127.0.0.1", "--generic-ssh-port", str(port or bare.ssh_port),
                    "--generic-ssh-user", user, "--generic-ssh-key", key or str(bare.key),
                    "--generic-engine-port", str(bare.engine_port), *extra, name, timeout=400)


def _as_root(env: Env, bare: Bare, script: str) -> str:
    return env.run("ssh", "-i", str(bare.key), "-o", "IdentitiesOnly=yes", "-o",
                   "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "BatchMode=yes", "-p", str(bare.ssh_port), "root@127.0.0.1",
                   script).stdout


def _nothing_made(env: Env, name: str) -> None:
    assert not env.machine_dir(name).exists()
    assert name not in env.contexts()


def test_bad_ssh_input_names_the_step_and_makes_nothing(env: Env, bare: Bare,
                                                        tmp_path: Path) -> None:
    missing = _create(env, bare, name="nokey", key=str(tmp_path / "absent"))
    assert missing.returncode == 1
    assert f"reading --generic-ssh-key: {tmp_path / 'absent'}: no such file" in missing.stderr
    _nothing_made(env, "nokey")
    (tmp_path / "garbage").write_text("not a key\n")
    garbage = _create(env, bare, name="garbage", key=str(tmp_path / "garbage"))
    assert "Error creating machine: reading --generic-ssh-key: SSH key " \
        f"{tmp_path / 'garbage'}: Invalid private key" in garbage.stderr
    _nothing_made(env, "garbage")
    wrong_key = tmp_path / "wrong"
    env.ok("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key))
    wrong = _create(env, bare, name="wrongkey", key=str(wrong_key))
    assert "Error creating machine: connecting over ssh: " in wrong.stderr
    assert "Permission denied" in wrong.stderr
    _nothing_made(env, "wrongkey")
    with socket.socket() as closed:  # bound, never listening: a port nothing answers on
        closed.bind(("127.0.0.1", 0))
        refused = _create(env, bare, name="closed", port=closed.getsockname()[1])
    assert "connecting over ssh: " in refused.stderr
    assert "Connection refused" in refused.stderr
    _nothing_made(env, "closed")
    no_address = env.moor("machine", "create", "--driver", "generic", "noaddr")
    assert "requires the --generic-ip-address option" in no_address.stderr
    _nothing_made(env, "noaddr")


def test_provision_run_stop_start_certs_upgrade_and_rm(env: Env, bare: Bare,
                                               local_moord: Daemon) -> None:
    created = _create(env, bare)
    assert created.returncode == 0, created.stderr
    assert "Starting the engine (systemd)" in created.stdout
    try:
        # sudo: systemctl reaches systemd without D-Bus (not installed) only as root
        assert env.ok(MOOR, "machine", "ssh", NAME, "id -un; sudo -n systemctl is-enabled "
                      "moord; sudo -n systemctl is-active moord") == \
            f"{BARE_USER}\nenabled\nactive\n"
        saved = local_moord.docker("save", "busybox:latest")
        env.ok("docker", "--context", NAME, "load", input=saved.stdout)
        assert env.ok(MOOR, "--context", NAME, "run", "--rm", "busybox", "echo",
                      "over generic") == "over generic\n"
        url = f"tcp://127.0.0.1:{bare.engine_port}"
        assert env.ok(MOOR, "machine", "ls", "--format", "{{.Name}} {{.DriverName}} "
                      "{{.State}} {{.URL}}") == f"{NAME} generic Running {url}\n"
        assert env.ok(MOOR, "machine", "ssh", NAME, "hostname") == "bare\n"
        taken = _create(env, bare)
        assert f'Docker machine "{NAME}" already exists' in taken.stderr
        env.ok(MOOR, "machine", "stop", NAME)
        assert env.ok(MOOR, "machine", "status", NAME) == "Stopped\n"
        assert _as_root(env, bare, "systemctl is-active moord") == "inactive\n"
        env.ok(MOOR, "machine", "start", NAME)
        before = (env.machine_dir() / "server.pem").read_bytes()
        env.ok(MOOR, "machine", "regenerate-certs", "-f", NAME)
        assert (env.machine_dir() / "server.pem").read_bytes() != before
        assert env.ok("docker", "--context", NAME, "version", "--format",
                      "{{.Server.Os}}") == "linux\n"
        assert "Restarted the engine" in env.ok(MOOR, "machine", "upgrade", NAME)
        assert env.ok(MOOR, "--context", NAME, "run", "--rm", "busybox", "true") == ""
    finally:
        removed = env.moor("machine", "rm", "-y", NAME)
    assert removed.returncode == 0, removed.stderr
    assert "moorage is uninstalled from 127.0.0.1; the engine's data stays in /var/lib/moor" \
        in removed.stdout
    _nothing_made(env, NAME)
    left = _as_root(env, bare, "ls /opt /etc/systemd/system; pgrep -f /opt/moorag[e] || "
                    "echo no-moord")
    assert "moorage" not in left.replace("no-moord", "")
    assert "moord.service" not in left
    assert "no-moord" in left


def test_without_systemd_a_restart_loop_keeps_moord_up(env: Env, bare: Bare) -> None:
    """The driver's fallback for a host without systemd: /run/systemd hidden under a
    tmpfs, the probe's sign of systemd, so the host looks like one booted by another
    init. moord killed comes back from the loop; rm (which stops first) leaves neither."""
    import time

    name = f"mn{os.getpid()}"
    _as_root(env, bare, "mount -t tmpfs -o size=1m moor-no-systemd /run/systemd")

    def moord_pid() -> str:
        return env.moor("machine", "ssh", name, "sudo -n cat /run/moor/moord.pid").stdout.strip()

    try:
        created = _create(env, bare, name=name)
        assert created.returncode == 0, created.stderr
        assert "Starting the engine (none)" in created.stdout
        first = moord_pid()
        assert first
        env.ok(MOOR, "machine", "ssh", name, f"sudo -n kill -9 {first}")
        deadline = time.monotonic() + 120
        while moord_pid() in ("", first) or env.moor("machine", "status", name).stdout != \
                "Running\n":
            assert time.monotonic() < deadline, "moord was not started again"
            time.sleep(1)
    finally:  # rm stops the loop, then moord (generic.stop), and removes both
        removed = env.moor("machine", "rm", "-y", "-f", name)
        left = _as_root(env, bare, "pgrep -f /opt/moorag[e] || echo none; "
                        "umount /run/systemd")
    assert removed.returncode == 0, removed.stderr
    assert left == "none\n"
    _nothing_made(env, name)


def test_the_bare_vm_goes_with_its_ports(bare: Bare) -> None:
    """Last: the fixture's VM killed as its teardown would, nothing left on the host."""
    os.kill(bare.pid, signal.SIGKILL)
    for _ in range(100):
        if free(bare.ssh_port) and free(bare.engine_port):
            break
        import time

        time.sleep(0.1)
    assert free(bare.ssh_port) and free(bare.engine_port)
