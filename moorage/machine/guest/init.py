#!/usr/bin/python3 -S
"""PID 1 of a machine's guest: boots only what the engine needs, then keeps it up.

No systemd: under TCG every unit costs seconds. It mounts the kernel's filesystems,
takes the seed disk's files on the first boot (SSH keys, TLS certificates, the
moorage package), brings up the user-mode network's static address, starts sshd and
moord (restarted if it dies), reaps orphans, and powers off cleanly when ACPI's
power button is pressed (QMP `system_powerdown`) or on SIGTERM/SIGUSR2.
Standard library only: it runs before anything else is set up.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

SEED_DEVICE = "/dev/vdb"
SEED_MOUNT = "/run/moor-seed"
STATE = "/etc/moor"
CERTS = "/etc/moor/certs"
SITE = "/usr/local/lib/python3.11/dist-packages"
MODULES = ("virtio_net", "overlay", "bridge", "veth", "br_netfilter", "nf_tables", "button",
           "evdev")
# --data-root and --exec-root spelled out: moord's config.build reads their defaults off
# a slotted dataclass (a member descriptor, not the path) when neither flag is given.
MOORD = ["/usr/local/bin/moord", "--data-root", "/var/lib/moor", "--exec-root", "/run/moor",
         "-H", "unix:///run/moor/moor.sock", "-H", "tcp://0.0.0.0:2376", "--tlsverify",
         "--tlscacert", f"{CERTS}/ca.pem", "--tlscert", f"{CERTS}/server.pem",
         "--tlskey", f"{CERTS}/server-key.pem"]
KEY_POWER = 116
_EVENT = struct.Struct("llHHi")
_libc = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"<2>moor-init: {message}\n")  # shown on the console even when quiet


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    os.makedirs(target, exist_ok=True)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                   data.encode() or None) != 0:
        err = ctypes.get_errno()
        if err != 16:  # EBUSY: already mounted (the initramfs moved /dev, /proc, /sys)
            log(f"mount {target}: {os.strerror(err)}")


def mount_basics() -> None:
    mount("proc", "/proc", "proc")
    mount("sysfs", "/sys", "sysfs")
    mount("devtmpfs", "/dev", "devtmpfs")
    mount("devpts", "/dev/pts", "devpts", 0, "gid=5,mode=620,ptmxmode=666")
    mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777")
    mount("tmpfs", "/run", "tmpfs", 0, "mode=755")
    mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777")
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, "nsdelegate")
    # MS_REMOUNT: the kernel mounted the root read-only for its fsck-less boot.
    mount("/dev/vda", "/", "ext4", 32)


def run(*argv: str) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def take_seed() -> None:
    """Copies the seed disk's files in place when its generation is new to this root:
    a first boot, or a create's moorage after an `upgrade` replaced the seed."""
    mount(SEED_DEVICE, SEED_MOUNT, "ext4", 1)  # MS_RDONLY
    try:
        with open(f"{SEED_MOUNT}/generation") as f:
            generation = f.read()
    except OSError:
        log("no seed disk")
        return
    try:
        with open(f"{STATE}/generation") as f:
            if f.read() == generation:
                return
    except OSError:
        pass
    os.makedirs(CERTS, 0o700, exist_ok=True)
    for name in ("ca.pem", "server.pem", "server-key.pem"):
        shutil.copy(f"{SEED_MOUNT}/certs/{name}", f"{CERTS}/{name}")
    os.makedirs("/root/.ssh", 0o700, exist_ok=True)
    shutil.copy(f"{SEED_MOUNT}/authorized_keys", "/root/.ssh/authorized_keys")
    for name in os.listdir(f"{SEED_MOUNT}/ssh"):
        shutil.copy(f"{SEED_MOUNT}/ssh/{name}", f"/etc/ssh/{name}")
        os.chmod(f"/etc/ssh/{name}", 0o600 if not name.endswith(".pub") else 0o644)
    shutil.copy(f"{SEED_MOUNT}/hostname", "/etc/hostname")
    shutil.rmtree(f"{SITE}/moorage", ignore_errors=True)
    shutil.copytree(f"{SEED_MOUNT}/moorage", f"{SITE}/moorage")
    with open(f"{STATE}/generation", "w") as f:
        f.write(generation)


def network() -> None:
    with open("/etc/hostname") as f:
        hostname = f.read().strip().encode()
    _libc.sethostname(hostname, len(hostname))
    run("ip", "link", "set", "lo", "up")
    run("ip", "link", "set", "eth0", "up")
    # QEMU's user-mode network: the guest is always 10.0.2.15, the host side 10.0.2.2.
    run("ip", "addr", "add", "10.0.2.15/24", "dev", "eth0")
    run("ip", "route", "add", "default", "via", "10.0.2.2")


def power_button() -> int | None:
    for name in sorted(os.listdir("/sys/class/input")):
        try:
            with open(f"/sys/class/input/{name}/device/name") as f:
                if name.startswith("event") and f.read().strip() == "Power Button":
                    return os.open(f"/dev/input/{name}", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
    return None


class Init:
    def __init__(self) -> None:
        self.moord: subprocess.Popen[bytes] | None = None
        self.sshd: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def start_moord(self) -> None:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": "/root"}
        logfile = open("/var/log/moord.log", "ab")  # noqa: SIM115 - the child keeps it
        self.moord = subprocess.Popen(MOORD, stdin=subprocess.DEVNULL, stdout=logfile,
                                      stderr=logfile, env=env, start_new_session=True)
        logfile.close()

    def start_sshd(self) -> None:
        os.makedirs("/run/sshd", 0o755, exist_ok=True)
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.moord and pid == self.moord.pid:
                self.moord.returncode = 0
                if not self.stopping:
                    log("moord exited; starting it again")
                    time.sleep(0.5)
                    self.start_moord()

    def poweroff(self) -> None:
        self.stopping = True
        log("powering off")
        if self.moord and self.moord.returncode is None:
            self.moord.terminate()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.moord.returncode is None:
                time.sleep(0.1)
                self.reap()
        os.kill(-1, signal.SIGTERM)
        time.sleep(0.5)
        os.kill(-1, signal.SIGKILL)
        os.sync()
        _libc.mount(b"/dev/vda", b"/", b"ext4", 32 | 1, None)  # MS_REMOUNT|MS_RDONLY
        os.sync()
        _libc.reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF

    def loop(self) -> None:
        def wake(*_: object) -> None:
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:
                pass

        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR2):
            signal.signal(signum, wake)
        requested = [False]

        def request(*_: object) -> None:
            requested[0] = True
            wake()

        signal.signal(signal.SIGTERM, request)
        signal.signal(signal.SIGUSR2, request)
        button = power_button()
        watched = [self.wake_r] + ([button] if button is not None else [])
        while not requested[0]:
            try:
                ready, _, _ = select.select(watched, [], [], 5)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
            if button is not None and button in ready:
                data = os.read(button, _EVENT.size * 64)
                for offset in range(0, len(data) - _EVENT.size + 1, _EVENT.size):
                    _, _, kind, code, value = _EVENT.unpack_from(data, offset)
                    if kind == 1 and code == KEY_POWER and value == 1:
                        requested[0] = True
            self.reap()
        self.poweroff()


def main() -> None:
    if os.getpid() != 1:
        sys.exit("moor-init runs as the guest's PID 1")
    os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    mount_basics()
    run("modprobe", "-a", *MODULES)
    take_seed()
    network()
    init = Init()
    init.start_sshd()
    init.start_moord()
    log("ready")
    init.loop()


if __name__ == "__main__":
    main()
