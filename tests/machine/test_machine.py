"""`moor machine` with the qemu driver: a real VM (TCG), its engine over TLS, the docker
CLI through `machine env`, SSH, stop/start, certificates, upgrade and removal.

The machine image is cached outside the clone (MOOR_MACHINE_CACHE, default
/var/tmp/moorage-machine-cache) under a content key; on a fresh host the first create
builds it (about 40-110 s, from the host's Debian mirror and PyPI).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon
from machinekit import MOOR, Env, free

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds the image as root (mmdebstrap)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu not installed"),
]

NAME = f"mt{os.getpid()}"


@pytest.fixture(scope="module")
def machine(env: Env, local_moord: Daemon) -> Iterator[str]:
    try:
        env.ok(MOOR, "machine", "create", "--qemu-memory", "512", NAME, timeout=600)
        saved = local_moord.docker("save", "busybox:latest")
        assert saved.returncode == 0
        env.ok("docker", "--context", NAME, "load", input=saved.stdout)
        yield NAME
    finally:
        if env.machine_dir().exists():
            pid = env.qemu_pid()
            env.moor("machine", "rm", "-f", "-y", NAME)
            if pid and env.qemu_pid():
                os.kill(pid, signal.SIGKILL)


def test_create_refuses_bad_names_and_a_failing_image_build(env: Env, tmp_path: Path) -> None:
    bad = env.moor("machine", "create", "-bad")
    assert bad.returncode != 0
    bad = env.moor("machine", "create", "a_b")
    assert "Invalid hostname specified" in bad.stderr
    other = env.moor("machine", "create", "--generic-ssh-user", "u", "far")
    assert "--generic-ssh-user is an option of the generic driver, not of qemu" in other.stderr
    assert not env.machine_dir("far").exists()
    failing = env.moor("machine", "create", "broken",
                       extra={"MOOR_MACHINE_MIRROR": "http://127.0.0.1:9/debian",
                              "MOOR_MACHINE_CACHE": str(tmp_path / "cache")})
    assert failing.returncode == 1
    assert "Error creating machine: building the image: mmdebstrap" in failing.stderr
    assert not env.machine_dir("broken").exists()
    assert os.listdir(tmp_path / "cache" / "images") == []  # no half-built image
    assert "broken" not in env.ok(MOOR, "context", "ls", "-q").split()


def test_create_then_run_through_the_context_and_machine_env(env: Env, machine: str) -> None:
    listing = env.ok(MOOR, "machine", "ls").splitlines()
    assert listing[0].split() == ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "ENGINE",
                                  "ERRORS"]
    url = env.ok(MOOR, "machine", "url", machine).strip()
    assert listing[1].split()[:5] == [machine, "-", "qemu", "Running", url]
    assert env.ok(MOOR, "machine", "status", machine) == "Running\n"
    assert env.ok(MOOR, "machine", "ip", machine) == "127.0.0.1\n"
    assert env.ok(MOOR, "machine", "ls", "--filter", "state=Running", "--format",
                  "{{.Name}} {{.DriverName}} {{.URL}}") == f"{machine} qemu {url}\n"
    assert env.ok(MOOR, "machine", "ls", "-q", "--filter", "driver=generic") == ""
    assert env.ok(MOOR, "machine", "inspect", "--format", "{{.DriverName}} {{.Driver.Memory}}",
                  machine) == "qemu 512\n"
    assert env.ok(MOOR, "machine", "config", machine).endswith(f"\n-H={url}\n")
    assert env.ok(MOOR, "--context", machine, "run", "--rm", "busybox", "echo",
                  "hello from the machine") == "hello from the machine\n"
    # docker-machine's env output, word for word, then the unmodified docker CLI with it.
    machine_dir = str(env.machine_dir())
    assert env.ok(MOOR, "machine", "env", "--shell", "bash", machine) == (
        f'export DOCKER_TLS_VERIFY="1"\nexport DOCKER_HOST="{url}"\n'
        f'export DOCKER_CERT_PATH="{machine_dir}"\nexport DOCKER_MACHINE_NAME="{machine}"\n'
        f"# Run this command to configure your shell: \n# eval $(moor machine env {machine})\n")
    assert f'set -gx DOCKER_HOST "{url}";' in env.ok(MOOR, "machine", "env", "--shell",
                                                     "fish", machine)
    assert f'$Env:DOCKER_HOST = "{url}"' in env.ok(MOOR, "machine", "env", "--shell",
                                                   "powershell", machine)
    assert env.ok(MOOR, "machine", "env", "-u", "--shell", "bash").startswith(
        "unset DOCKER_TLS_VERIFY\nunset DOCKER_HOST\n")
    script = f'eval "$({MOOR} machine env --shell bash {machine})" && ' \
             "docker run --rm busybox echo via docker && moor_active=$(" + MOOR + \
             " machine active) && echo $moor_active"
    assert env.ok("bash", "-c", script) == f"via docker\n{machine}\n"
    for path in ("ca-key.pem", "key.pem"):
        assert os.stat(env.storage / "certs" / path).st_mode & 0o077 == 0
    assert os.stat(env.machine_dir() / "id_ed25519").st_mode & 0o077 == 0
    assert os.stat(env.machine_dir()).st_mode & 0o077 == 0


def test_ssh_and_scp_both_ways(env: Env, machine: str, tmp_path: Path) -> None:
    assert env.ok(MOOR, "machine", "ssh", machine, "hostname") == f"{machine}\n"
    assert env.ok(MOOR, "machine", "ssh", machine, "systemctl is-active moord ssh acpid; "
                  "systemctl is-enabled moord") == "active\nactive\nactive\nenabled\n"
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "file.txt").write_text("going up\n")
    env.ok(MOOR, "machine", "scp", "-r", str(tmp_path / "up"), f"{machine}:/tmp/")
    assert env.ok(MOOR, "machine", "ssh", machine, "cat /tmp/up/file.txt") == "going up\n"
    env.ok(MOOR, "machine", "ssh", machine, "echo coming down > /tmp/down.txt")
    env.ok(MOOR, "machine", "scp", f"{machine}:/tmp/down.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "coming down\n"
    # a machine on both sides (one connection each), the user named on one
    env.ok(MOOR, "machine", "scp", f"root@{machine}:/tmp/down.txt", f"{machine}:/tmp/again.txt")
    assert env.ok(MOOR, "machine", "ssh", machine, "cat /tmp/again.txt") == "coming down\n"
    # a local path with a colon stays local (asyncssh alone would read it as host:path)
    (tmp_path / "with:colon").write_text("colon\n")
    env.ok(MOOR, "machine", "scp", str(tmp_path / "with:colon"), f"{machine}:/tmp/")
    assert env.ok(MOOR, "machine", "ssh", machine, "cat /tmp/with:colon") == "colon\n"
    absent = env.moor("machine", "scp", f"{machine}:/tmp/absent", str(tmp_path / "absent"))
    assert absent.returncode == 1
    assert "scp: /tmp/absent: No such file or directory" in absent.stderr
    assert "scp: scp:" not in absent.stderr
    # stdin forwarded, stderr and the exit status passed through
    piped = env.moor("machine", "ssh", machine, "cat; echo to-stderr >&2; exit 7",
                     input=b"piped in\n")
    assert (piped.returncode, piped.stdout, piped.stderr) == (7, "piped in\n", "to-stderr\n")


def test_ssh_refuses_a_changed_host_key(env: Env, machine: str, tmp_path: Path) -> None:
    known_hosts = env.machine_dir() / "known_hosts"
    saved = known_hosts.read_text()
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    try:
        known_hosts.write_text(f"moor-machine-{machine} {(tmp_path / 'other.pub').read_text()}")
        changed = env.moor("machine", "ssh", machine, "touch /tmp/reached")
        assert changed.returncode == 255
        assert f'Host key verification failed for machine "{machine}"' in changed.stderr
        assert str(known_hosts) in changed.stderr
        copied = env.moor("machine", "scp", str(other), f"{machine}:/tmp/")
        assert 'Host key verification failed' in copied.stderr
    finally:
        known_hosts.write_text(saved)
    assert env.ok(MOOR, "machine", "ssh", machine, "ls /tmp/reached /tmp/other 2>&1; true") \
        .count("No such file") == 2


def test_ssh_without_a_command_is_an_interactive_pty(env: Env, machine: str) -> None:
    """The local terminal raw while the session lasts and restored after, its size sent
    at the start and again on SIGWINCH, the shell's exit status passed through."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    def resize(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    master, slave = pty.openpty()
    resize(slave, 33, 97)
    before = termios.tcgetattr(slave)
    shell = subprocess.Popen([MOOR, "machine", "ssh", machine], stdin=slave, stdout=slave,
                             stderr=slave, env=env.vars, start_new_session=True)
    seen = b""

    def until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 4096)

    try:
        os.write(master, b"echo size $(stty size) on $(tty | cut -c1-9)\n")
        until(b"size 33 97 on /dev/pts/")
        raw = termios.tcgetattr(slave)
        assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON
        resize(slave, 40, 120)
        shell.send_signal(signal.SIGWINCH)
        time.sleep(1)
        os.write(master, b"echo size $(stty size); exit 3\n")
        until(b"size 40 120")
        assert shell.wait(timeout=60) == 3
        assert termios.tcgetattr(slave) == before
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
        os.close(master)
        os.close(slave)


def test_ssh_with_a_missing_or_wrong_key_fails_clearly(env: Env, machine: str) -> None:
    key = env.machine_dir() / "id_ed25519"
    public = env.machine_dir() / "id_ed25519.pub"
    saved, saved_public = key.read_bytes(), public.read_bytes()
    try:
        key.unlink()
        missing = env.moor("machine", "ssh", machine, "true")
        assert missing.returncode == 1
        assert f"SSH key {key} does not exist" in missing.stderr
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        wrong = env.moor("machine", "ssh", machine, "true")
        assert wrong.returncode == 255
        assert "Permission denied" in wrong.stderr
    finally:
        key.write_bytes(saved)
        key.chmod(0o600)
        public.write_bytes(saved_public)


def test_a_taken_name_is_refused_and_the_machine_is_untouched(env: Env, machine: str) -> None:
    taken = env.moor("machine", "create", machine)
    assert taken.returncode == 1
    assert f'Docker machine "{machine}" already exists' in taken.stderr
    assert env.ok(MOOR, "machine", "status", machine) == "Running\n"


def test_stop_start_keeps_state_and_restart_always_containers(env: Env, machine: str) -> None:
    env.ok("docker", "--context", machine, "run", "-d", "--name", "always", "--restart",
           "always", "busybox", "sleep", "100000")
    env.ok("docker", "--context", machine, "create", "--name", "kept", "busybox", "true")
    env.ok(MOOR, "machine", "stop", machine)
    assert env.ok(MOOR, "machine", "status", machine) == "Stopped\n"
    assert env.qemu_pid() is None
    env.ok(MOOR, "machine", "start", machine)
    names = env.ok("docker", "--context", machine, "ps", "-a", "--format",
                   "{{.Names}} {{.State}}").split("\n")
    assert "always running" in names
    assert "kept created" in names


def test_regenerate_certs_and_upgrade_keep_the_engine_reachable(env: Env, machine: str) -> None:
    before = (env.machine_dir() / "server.pem").read_bytes()
    env.ok(MOOR, "machine", "regenerate-certs", "-f", machine)
    assert (env.machine_dir() / "server.pem").read_bytes() != before
    assert env.ok("docker", "--context", machine, "version", "--format",
                  "{{.Server.Version}}").strip()
    out = env.ok(MOOR, "machine", "upgrade", machine)
    assert "Restarted the engine" in out
    assert "always" in env.ok("docker", "--context", machine, "ps", "--format", "{{.Names}}")


def test_kill_then_rm_leaves_nothing(env: Env, machine: str) -> None:
    config = env.config()
    env.ok(MOOR, "machine", "kill", machine)
    assert env.ok(MOOR, "machine", "status", machine) == "Stopped\n"
    assert env.qemu_pid() is None
    assert env.ok(MOOR, "machine", "rm", "-y", machine) == f"Successfully removed {machine}\n"
    assert not env.machine_dir().exists()
    assert machine not in env.ok(MOOR, "context", "ls", "-q").split()
    assert free(config["Driver"]["SSHPort"]) and free(config["Driver"]["EnginePort"])
    assert env.ok(MOOR, "machine", "ls", "-q") == ""
