"""The qemu driver: a local VM per machine, booted from the cached image.

Each machine has a qcow2 overlay on the image's disk and a small seed disk (ext4 made
with `mkfs.ext4 -d`: no loop mount) carrying its SSH keys, TLS files, hostname and
the client's moorage, which the guest's moor-seed.service takes on the first boot. Networking is
QEMU's user-mode stack with `restrict=on` (the guest reaches nothing) and two
forwards on 127.0.0.1: SSH and the engine's TLS port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from moorage.machine import qmp
from moorage.machine.errors import MachineError, run
from moorage.machine.image import GUEST_ENGINE_PORT
from moorage.machine.paths import cache_dir
from moorage.machine.store import Machine

QEMU = "qemu-system-x86_64"
_KVM_CPU = "host,-arch-capabilities"


def disks(machine: Machine, image_disk: str, disk_size_mb: int, seed_dir: str) -> None:
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image_disk,
         machine.path("disk.qcow2"), f"{disk_size_mb}M"], "creating the disk")
    os.chmod(machine.path("disk.qcow2"), 0o600)
    run(["mkfs.ext4", "-q", "-F", "-L", "moor-seed", "-d", seed_dir, machine.path("seed.img"),
         "64M"], "creating the seed disk")
    os.chmod(machine.path("seed.img"), 0o600)


def pid(machine: Machine) -> int | None:
    """The VM's qemu process, when it runs: the pidfile's pid, checked against its
    command line (a pid is reused once the process is gone)."""
    try:
        with open(machine.path("qemu.pid")) as f:
            recorded = int(f.read().strip())
        with open(f"/proc/{recorded}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return None
    return recorded if machine.path("disk.qcow2").encode() in cmdline else None


def state(machine: Machine) -> str:
    return "Running" if pid(machine) else "Stopped"


def accel(kernel: str, notice: object) -> str:
    """kvm when a short probe boot of the kernel gets going under it, else tcg (with a
    one-line notice). The answer is cached per kernel: the probe costs seconds."""
    forced = os.environ.get("MOOR_MACHINE_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.path.exists("/dev/kvm"):
        notice("/dev/kvm is missing: using TCG emulation (slow)")  # type: ignore[operator]
        return "tcg"
    record = os.path.join(cache_dir(), "accel.json")
    try:
        with open(record) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if kernel not in known:
        known[kernel] = "kvm" if _kvm_boots(kernel) else "tcg"
        os.makedirs(cache_dir(), exist_ok=True)
        with open(record + ".tmp", "w") as f:
            json.dump(known, f)
        os.replace(record + ".tmp", record)
    if known[kernel] == "tcg":
        notice("KVM guests do not boot on this host (/dev/kvm probe): "  # type: ignore[operator]
               "using TCG emulation (slow)")
    return str(known[kernel])


def _kvm_boots(kernel: str) -> bool:
    """Boots the kernel with no root disk: under a working KVM it reaches its panic
    for the missing root within seconds and QEMU exits (-no-reboot)."""
    argv = [QEMU, "-accel", "kvm", "-cpu", _KVM_CPU, "-m", "256", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-append", "console=ttyS0 panic=-1 quiet"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=8, check=False)
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in done.stdout or b"VFS" in done.stdout


def launch(machine: Machine) -> None:
    d = machine.driver
    accel_args = ["-accel", "kvm", "-cpu", _KVM_CPU] if d["Accel"] == "kvm" \
        else ["-accel", "tcg", "-cpu", "max"]
    forwards = (f"hostfwd=tcp:127.0.0.1:{machine.ssh_port}-:22,"
                f"hostfwd=tcp:127.0.0.1:{machine.engine_port}-:"
                f"{d.get('GuestEnginePort', GUEST_ENGINE_PORT)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(machine.path("console.log"))
    argv = [QEMU, "-name", f"moor-machine-{machine.name}", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", *accel_args, "-smp", str(d["CPU"]),
            "-m", str(d["Memory"]), "-kernel", str(d["Kernel"]), "-initrd", str(d["Initrd"]),
            "-append", "console=ttyS0 root=/dev/vda rw rootfstype=ext4 quiet loglevel=3 "
                       "panic=-1 mitigations=off",
            "-drive", f"file={machine.path('disk.qcow2')},if=virtio,format=qcow2",
            "-drive", f"file={machine.path('seed.img')},if=virtio,format=raw,readonly=on",
            "-netdev", f"user,id=net0,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=net0",
            "-serial", f"file:{machine.path('console.log')}",
            "-qmp", f"unix:{machine.path('qmp.sock')},server=on,wait=off",
            "-pidfile", machine.path("qemu.pid"), "-daemonize"]
    run(argv, "starting the VM", timeout=60)


def console_tail(machine: Machine, lines: int = 5) -> str:
    try:
        with open(machine.path("console.log"), errors="replace") as f:
            return " / ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def wait_engine(machine: Machine, timeout: float = 180) -> str:
    """Polls the engine's /version through TLS until it answers; returns its version."""
    from moorage.client.api import Client
    from moorage.client.endpoint import Endpoint
    from moorage.client.tls_options import TLSOptions

    tls = TLSOptions(machine.path("ca.pem"), machine.path("cert.pem"), machine.path("key.pem"))
    deadline = time.monotonic() + timeout
    last = ""
    while True:  # one attempt at least: timeout=0 asks once
        if machine.driver_name == "qemu" and pid(machine) is None:
            raise MachineError(f"the VM stopped: {console_tail(machine)}", "waiting for the engine")
        client = Client(Endpoint(machine.url, tls))
        try:
            return str(client.get("/version")["Version"])
        except Exception as err:  # not up yet: refused, reset, TLS handshake cut short
            last = str(err)
        finally:
            client.close()
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    where = f"; console: {console_tail(machine)}" if machine.driver_name == "qemu" else ""
    raise MachineError(f"the engine did not answer within {timeout:.0f}s ({last}){where}",
                       "waiting for the engine")


def stop(machine: Machine, timeout: float = 90) -> None:
    """ACPI power button: the guest's acpid asks systemd to power off, which stops moord
    (its restart policies bring the containers back at the next start); QEMU exits."""
    running = pid(machine)
    if running is None:
        return
    try:
        qmp.command(machine.path("qmp.sock"), "system_powerdown")
    except OSError as err:
        raise MachineError(f"QMP system_powerdown: {err}", "stopping the VM") from None
    if not _gone(running, timeout):
        raise MachineError(f"the guest did not power off within {timeout:.0f}s",
                           "stopping the VM")


def kill(machine: Machine) -> None:
    running = pid(machine)
    if running is None:
        return
    os.kill(running, signal.SIGKILL)
    _gone(running, 10)


def _gone(process: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{process}") or _zombie(process):
            return True
        time.sleep(0.1)
    return False


def _zombie(process: int) -> bool:
    try:
        with open(f"/proc/{process}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def seed(machine: Machine, authorized_key: str, host_key: str, generation: str) -> str:
    """The seed disk's tree: what the guest init copies in place on the first boot."""
    tree = machine.path(".seed")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(os.path.join(tree, "certs"), 0o700)
    os.makedirs(os.path.join(tree, "ssh"), 0o700)
    for name in ("ca.pem", "server.pem", "server-key.pem"):
        shutil.copy(machine.path(name), os.path.join(tree, "certs", name))
    shutil.copy(host_key, os.path.join(tree, "ssh", "ssh_host_ed25519_key"))
    shutil.copy(host_key + ".pub", os.path.join(tree, "ssh", "ssh_host_ed25519_key.pub"))
    for name, text in (("authorized_keys", authorized_key + "\n"),
                       ("hostname", machine.name + "\n"), ("generation", generation)):
        with open(os.path.join(tree, name), "w") as f:
            f.write(text)
    from moorage.machine.image import copy_moorage

    copy_moorage(os.path.join(tree, "moorage"))
    return tree


def notice_to_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
