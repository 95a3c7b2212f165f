"""`moor machine` with the generic driver, against a second VM booted bare from the
cached machine image: its seed carries a moorage whose daemon only sleeps, so the
guest init runs no engine and the host is a plain Linux reached over SSH on its
forwarded port on 127.0.0.1 (no systemd there: the driver's own loop keeps moord up).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from enginekit import Daemon
from machinekit import CACHE, MOOR, Env, free

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds the image as root (mmdebstrap)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu not installed"),
]

NAME = f"mg{os.getpid()}"
_SLEEPING_DAEMON = "import time\n\n\ndef main():\n    while True:\n        time.sleep(3600)\n"


@dataclass
class Bare:
    ssh_port: int
    engine_port: int
    key: Path
    pid: int


def _bare_vm(storage: Path) -> Iterator[Bare]:
    from moorage.machine import certs, qemu, ssh, store
    from moorage.machine import image as images
    from moorage.machine.paths import machine_dir
    from moorage.machine.ports import free_port

    # The store's paths are read when a Machine is made: the variables need only last that long.
    with mock.patch.dict(os.environ, {"MOOR_MACHINE_STORAGE_PATH": str(storage),
                                      "MOOR_MACHINE_CACHE": CACHE}):
        image = images.ensure()
        os.makedirs(machine_dir("bare"), 0o700)
        engine_port = free_port()
        machine = store.new("bare", "qemu", {
            "CPU": 1, "Memory": 512, "IPAddress": "127.0.0.1", "Kernel": image.kernel,
            "Initrd": image.initrd, "SSHPort": free_port(), "EnginePort": engine_port,
            "GuestEnginePort": engine_port, "Accel": qemu.accel(image.kernel, print)})
        certs.machine_certs(machine.dir, "bare", ["127.0.0.1"])
    try:
        client_key = certs.ssh_keypair(machine.path("id_ed25519"))
        host_key = machine.path("ssh_host_ed25519_key")
        Path(machine.path("known_hosts")).write_text(
            f"moor-machine-bare {certs.ssh_keypair(host_key)}\n")
        tree = Path(qemu.seed(machine, client_key, host_key, "bare"))
        shutil.rmtree(tree / "moorage")
        (tree / "moorage" / "daemon").mkdir(parents=True)
        (tree / "moorage" / "__init__.py").write_text("")
        (tree / "moorage" / "daemon" / "__init__.py").write_text("")
        (tree / "moorage" / "daemon" / "main.py").write_text(_SLEEPING_DAEMON)
        qemu.disks(machine, image.disk, images.ROOT_SIZE_MB, str(tree))
        qemu.launch(machine)
        pid = qemu.pid(machine)
        assert pid
        _wait_ssh(machine, ssh)
        yield Bare(machine.ssh_port, engine_port, Path(machine.path("id_ed25519")), pid)
    finally:
        qemu.kill(machine)


def _wait_ssh(machine: object, ssh: object) -> None:
    import time

    from moorage.machine.errors import MachineError

    deadline = time.monotonic() + 120
    while True:
        try:
            ssh.run(machine, ["true"])
            return
        except MachineError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    yield from _bare_vm(tmp_path_factory.mktemp("bare"))


def _create(env: Env, bare: Bare, *extra: str, name: str = NAME, key: str | None = None,
            port: int | None = None) -> subprocess.CompletedProcess[str]:
    return env.moor("machine", "create", "--driver", "generic", "--generic-ip-address",
                    "127.0.0.1", "--generic-ssh-port", str(port or bare.ssh_port),
                    "--generic-ssh-key", key or str(bare.key), "--generic-engine-port",
                    str(bare.engine_port), *extra, name, timeout=400)


def _nothing_made(env: Env, name: str) -> None:
    assert not env.machine_dir(name).exists()
    assert name not in env.contexts()


def test_bad_ssh_input_names_the_step_and_makes_nothing(env: Env, bare: Bare,
                                                        tmp_path: Path) -> None:
    missing = _create(env, bare, name="nokey", key=str(tmp_path / "absent"))
    assert missing.returncode == 1
    assert f"reading --generic-ssh-key: {tmp_path / 'absent'}: no such file" in missing.stderr
    _nothing_made(env, "nokey")
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
    assert "Starting the engine (none)" in created.stdout
    try:
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
    left = env.run("ssh", "-i", str(bare.key), "-o", "IdentitiesOnly=yes", "-o",
                   "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "BatchMode=yes", "-p", str(bare.ssh_port), "root@127.0.0.1",
                   "ls /opt; pgrep -f /opt/moorag[e] || echo no-moord")
    assert "moorage" not in left.stdout.replace("no-moord", "")
    assert "no-moord" in left.stdout


def test_the_bare_vm_goes_with_its_ports(bare: Bare) -> None:
    """Last: the fixture's VM killed as its teardown would, nothing left on the host."""
    os.kill(bare.pid, signal.SIGKILL)
    for _ in range(100):
        if free(bare.ssh_port) and free(bare.engine_port):
            break
        import time

        time.sleep(0.1)
    assert free(bare.ssh_port) and free(bare.engine_port)
