"""Machine operations: create, start, stop, kill, remove, certificates, upgrade.

A create that fails leaves nothing: the VM process, the machine's folder (overlay,
seed, keys) and the context are undone in reverse order, and the error names the
step that failed.
"""

from __future__ import annotations

import os
import shutil
import time

from moorage.machine import qemu, ssh, store
from moorage.machine.errors import MachineError
from moorage.machine.image import ROOT_SIZE_MB
from moorage.machine.paths import machine_dir
from moorage.machine.ports import free_port, in_use
from moorage.machine.progress import Progress

DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 1024
DEFAULT_DISK_MB = ROOT_SIZE_MB
_ADDRESSES = ["127.0.0.1", "10.0.2.15"]


def _context_material(machine: store.Machine) -> dict[str, str]:
    return {"ca.pem": machine.path("ca.pem"), "cert.pem": machine.path("cert.pem"),
            "key.pem": machine.path("key.pem")}


def _create_context(machine: store.Machine) -> None:
    from moorage.client import contexts

    contexts.create(machine.name, f"moor machine {machine.name}", machine.url, False,
                    _context_material(machine))


def remove_context(name: str) -> None:
    from moorage.client import contexts
    from moorage.client.errors import EndpointError

    try:
        document = contexts.document(name)
    except EndpointError:
        return
    if document.get("Metadata", {}).get("Description") == f"moor machine {name}":
        contexts.remove(name)  # never a context of the user's that shares the name


def _refresh_context(machine: store.Machine) -> None:
    remove_context(machine.name)
    _create_context(machine)


def check_free(name: str) -> None:
    from moorage.client import contexts
    from moorage.client.errors import EndpointError

    store.check_name(name)
    if os.path.exists(machine_dir(name)):
        raise MachineError(f'Docker machine "{name}" already exists')
    try:
        contexts.document(name)
    except EndpointError:
        return
    raise MachineError(f'context "{name}" already exists: a machine makes a context of its '
                       "name")


def _images_in_use() -> frozenset[str] | None:
    """The image folders whose disks back the machines' overlays (qemu-img's -b); None
    when a machine's config cannot be read, and so neither can what it uses."""
    used = set()
    for name in store.names():
        try:
            path = store.load(name).driver.get("ImagePath")
        except MachineError:
            return None
        if isinstance(path, str):
            used.add(os.path.dirname(path))
    return frozenset(used)


def create_qemu(name: str, cpus: int, memory_mb: int, disk_mb: int, image_dir: str | None,
                progress: Progress) -> store.Machine:
    from moorage.machine import certs
    from moorage.machine import image as images

    check_free(name)
    if memory_mb < 256:
        raise MachineError("--qemu-memory must be at least 256 (MB)")
    if cpus < 1:
        raise MachineError("--qemu-cpus must be at least 1")
    if disk_mb < DEFAULT_DISK_MB:
        raise MachineError(f"--qemu-disk-size must be at least {DEFAULT_DISK_MB} (MB): the "
                           "image's file system has that size")
    if image_dir:
        image = images.Image(image_dir)
        if not image.exists():
            raise MachineError(f"{image_dir}: no disk.qcow2, vmlinuz and initrd.img there",
                               "checking --qemu-image")
    else:
        image = images.cached()
        if not image.exists():
            with progress.step("Building the machine image (once, cached)"):
                image = images.ensure(progress.say, _images_in_use())
                qemu.accel(image.kernel, lambda _: None)  # probed once per image, not per create
    made: list[str] = []
    try:
        with progress.step("Creating certificates and keys"):
            os.makedirs(os.path.dirname(machine_dir(name)), 0o700, exist_ok=True)
            os.mkdir(machine_dir(name), 0o700)
            made.append("dir")
            machine = store.new(name, "qemu", {
                "CPU": cpus, "Memory": memory_mb, "DiskSize": disk_mb, "IPAddress": "127.0.0.1",
                "ImagePath": image.disk, "Kernel": image.kernel, "Initrd": image.initrd,
                "SSHPort": free_port(), "EnginePort": free_port(),
                "Accel": qemu.accel(image.kernel, progress.say)})
            certs.machine_certs(machine.dir, name, _ADDRESSES)
            client_key = certs.ssh_keypair(machine.path("id_ed25519"))
            host_key = machine.path("ssh_host_ed25519_key")
            host_public = certs.ssh_keypair(host_key)
            ssh.record_host_key(machine, host_public)
            machine.save()
        with progress.step("Creating the disk"):
            tree = qemu.seed(machine, client_key, host_key, str(time.time()))
            qemu.disks(machine, image.disk, disk_mb, tree)
            shutil.rmtree(tree)
            os.unlink(host_key)  # the guest has it now; only the public half stays
        with progress.step("Starting the VM"):
            made.append("vm")
            _launch(machine)
        with progress.step("Waiting for the engine"):
            qemu.wait_engine(machine)
        if disk_mb > DEFAULT_DISK_MB:
            with progress.step("Growing the file system"):
                ssh.run(machine, ["resize2fs", "/dev/vda"])
        with progress.step("Creating the context"):
            made.append("context")
            _create_context(machine)
    except BaseException:
        if "vm" in made:
            qemu.kill(machine)
        if "context" in made:
            remove_context(name)
        if "dir" in made:
            shutil.rmtree(machine_dir(name), ignore_errors=True)
        raise
    return machine


def create_generic(name: str, address: str, ssh_port: int, ssh_user: str, ssh_key: str,
                   engine_port: int, progress: Progress) -> store.Machine:
    from moorage.machine import certs, generic
    from moorage.machine import image as images

    check_free(name)
    if not address:
        raise MachineError("generic driver requires the --generic-ip-address option")
    if not ssh_key:
        raise MachineError("generic driver requires the --generic-ssh-key option: moor "
                           "machine uses no SSH agent and no password")
    if not os.path.isfile(ssh_key):
        raise MachineError(f"{ssh_key}: no such file", "reading --generic-ssh-key")
    ssh.load_key(ssh_key, "reading --generic-ssh-key")
    made: list[str] = []
    try:
        os.makedirs(os.path.dirname(machine_dir(name)), 0o700, exist_ok=True)
        os.mkdir(machine_dir(name), 0o700)
        made.append("dir")
        machine = store.new(name, "generic", {
            "IPAddress": address, "SSHPort": ssh_port, "SSHUser": ssh_user,
            "EnginePort": engine_port, "Init": "unknown"})
        machine.driver["SSHKeyPath"] = machine.path("id_rsa")
        generic.key_copy(machine, ssh_key)
        machine.save()
        with progress.step("Connecting over SSH"):
            generic.probe(machine)
        with progress.step("Creating certificates"):
            certs.machine_certs(machine.dir, name, [address])
        with progress.step("Installing moorage"):
            made.append("installed")
            tree = machine.path(".moorage")
            try:
                images.copy_moorage(tree)
                generic.install(machine, generic.bundle(images.dependencies(), tree))
            finally:
                shutil.rmtree(tree, ignore_errors=True)
            generic.write_certs(machine)
        with progress.step(f"Starting the engine ({machine.driver['Init']})"):
            generic.start(machine)
        with progress.step("Waiting for the engine"):
            qemu.wait_engine(machine, timeout=120)
        with progress.step("Creating the context"):
            made.append("context")
            _create_context(machine)
    except BaseException:
        if "context" in made:
            remove_context(name)
        if "installed" in made:
            try:
                generic.uninstall(machine)
            except MachineError:
                pass  # the SSH failure that got us here, most likely; it is reported
        if "dir" in made:
            shutil.rmtree(machine_dir(name), ignore_errors=True)
        raise
    return machine


def state(machine: store.Machine) -> str:
    from moorage.machine import generic

    return generic.state(machine) if machine.driver_name == "generic" else qemu.state(machine)


def stop(machine: store.Machine) -> None:
    from moorage.machine import generic

    if machine.driver_name == "generic":
        generic.stop(machine)
    else:
        qemu.stop(machine)


def kill(machine: store.Machine) -> None:
    from moorage.machine import generic

    if machine.driver_name == "generic":
        generic.stop(machine, "KILL")
    else:
        qemu.kill(machine)


def start(machine: store.Machine, progress: Progress) -> None:
    if machine.driver_name == "generic":
        from moorage.machine import generic

        if generic.state(machine) == "Running":
            raise MachineError(f'Machine "{machine.name}" is already running.')
        with progress.step("Starting the engine"):
            generic.start(machine)
        with progress.step("Waiting for the engine"):
            qemu.wait_engine(machine, timeout=120)
        return
    if qemu.pid(machine):
        raise MachineError(f'Machine "{machine.name}" is already running.')
    if in_use(machine.ssh_port) or in_use(machine.engine_port):
        _new_ports(machine)
        _refresh_context(machine)
    try:
        with progress.step("Starting the VM"):
            if _launch(machine):
                _refresh_context(machine)
        with progress.step("Waiting for the engine"):
            qemu.wait_engine(machine)
    except BaseException:
        qemu.kill(machine)
        raise


def _new_ports(machine: store.Machine) -> None:
    machine.driver["SSHPort"], machine.driver["EnginePort"] = free_port(), free_port()
    machine.save()


def _launch(machine: store.Machine) -> bool:
    """Starts the VM; when another process took a forwarded port between our pick and
    QEMU's bind (a shared host), once more on new ports. Returns whether they changed."""
    try:
        qemu.launch(machine)
        return False
    except MachineError as err:
        if "host forwarding" not in str(err):
            raise
    _new_ports(machine)
    qemu.launch(machine)
    return True


def remove(machine: store.Machine) -> str:
    """Returns what was left behind on purpose, for the user to read ("" for none)."""
    left = ""
    if machine.driver_name == "generic":
        from moorage.machine import generic, service

        generic.uninstall(machine)
        left = (f"moorage is uninstalled from {machine.ip}; the engine's data stays in "
                f"{service.DATA_ROOT} there")
    else:
        qemu.kill(machine)
    remove_context(machine.name)
    shutil.rmtree(machine.dir)
    return left


def regenerate_certs(machine: store.Machine, client_certs: bool) -> None:
    """New server certificate (and with client_certs a new CA and client certificate),
    sent to the guest over SSH; its engine restarts on them."""
    from moorage.machine import certs

    if client_certs:
        certs.ensure_client_store(regenerate=True)
    certs.machine_certs(machine.dir, machine.name, _addresses(machine))
    tar = _tar({f"certs/{n}": machine.path(n) for n in ("ca.pem", "server.pem",
                                                        "server-key.pem")})
    ssh.run_as_root(machine, "tar -x -C /etc/moor --no-same-owner && "
                    f"chmod 600 /etc/moor/certs/* && {_restart(machine)}", tar)
    _refresh_context(machine)
    qemu.wait_engine(machine, timeout=60)


def _restart(machine: store.Machine) -> str:
    """The shell command that restarts moord on its new files: the qemu guest's and a
    systemd host's unit, or a generic host's restart loop."""
    from moorage.machine import service

    return service.restart_command(machine.driver_name == "qemu"
                                   or machine.driver.get("Init") == "systemd")


def _addresses(machine: store.Machine) -> list[str]:
    return [machine.ip] if machine.driver_name == "generic" else _ADDRESSES


def upgrade(machine: store.Machine) -> str:
    """The client's moorage in place of the machine's; moord restarts on it (its unit,
    or a generic host's loop) and brings back the containers its restart policies keep."""
    from moorage.machine import generic
    from moorage.machine import image as images

    # With its bytecode, as create sends it: moord compiling moorage on a TCG guest
    # costs tens of seconds.
    tree = machine.path(".upgrade")
    shutil.rmtree(tree, ignore_errors=True)
    try:
        images.copy_moorage(os.path.join(tree, "moorage"))
        tar = _tar({os.path.relpath(os.path.join(folder, n), tree): os.path.join(folder, n)
                    for folder, _, names in os.walk(tree) for n in names})
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    site = generic.SITE if machine.driver_name == "generic" else f"/{images.SITE}"
    ssh.run_as_root(machine, f"rm -rf {site}/moorage.new && mkdir {site}/moorage.new && "
                    f"tar -x -C {site}/moorage.new && rm -rf {site}/moorage && "
                    f"mv {site}/moorage.new/moorage {site}/moorage && "
                    f"rmdir {site}/moorage.new && {_restart(machine)}", tar)
    time.sleep(1)
    return qemu.wait_engine(machine, timeout=120)


def _tar(files: dict[str, str]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for arcname, path in sorted(files.items()):
            tar.add(path, arcname=arcname, recursive=False)
    return buffer.getvalue()

