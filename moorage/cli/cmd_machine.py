"""`moor machine …`: docker-machine's commands over moorage.machine (qemu and generic
drivers)."""

from __future__ import annotations

import os
import sys

from moorage.cli.flags import BOOL, INT, LIST, STR, Spec, flag
from moorage.cli.output import indented_json, tabulate, write
from moorage.cli.session import CommandError
from moorage.machine import lifecycle, qemu, store
from moorage.machine.errors import MachineError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

_ENV_NAMES = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME")


def _guard(run: Callable[[Options, list[str]], int | None], prefix: str = "") -> Callable[
        [Session, Options, list[str]], int]:
    """Every machine failure as one line on stderr, docker-machine's way, exit 1."""
    def wrapped(_session: Session, opts: Options, args: list[str]) -> int:
        try:
            return run(opts, args) or 0
        except MachineError as err:
            raise CommandError(f"{prefix}{err}") from None
    return wrapped


def _load(name: str) -> store.Machine:
    return store.load(name)


def create(opts: Options, args: list[str]) -> int:
    from moorage.machine.progress import Progress

    if opts.driver not in ("qemu", "generic"):
        raise MachineError(f'Driver "{opts.driver}" not found. Do you have the plugin binary '
                           "accessible in your PATH? (moor machine has the qemu and generic "
                           "drivers)")
    _refuse_other_drivers_flags(opts)
    name = args[0]
    progress = Progress(name)
    write("Running pre-create checks...\n")
    if opts.driver == "generic":
        lifecycle.create_generic(name, opts.generic_ip_address, opts.generic_ssh_port,
                                 opts.generic_ssh_user, opts.generic_ssh_key,
                                 opts.generic_engine_port, progress)
    else:
        lifecycle.create_qemu(name, opts.qemu_cpus, opts.qemu_memory, opts.qemu_disk_size,
                              opts.qemu_image, progress)
    write("Docker is up and running!\nTo see how to connect your Docker Client to the Docker "
          f"Engine running on this virtual machine, run: moor machine env {name}\n")
    return 0


_DRIVER_FLAGS = {
    "qemu": ("qemu-cpus", "qemu-memory", "qemu-disk-size", "qemu-image"),
    "generic": ("generic-ip-address", "generic-ssh-port", "generic-ssh-user",
                "generic-ssh-key", "generic-engine-port"),
}


def _refuse_other_drivers_flags(opts: Options) -> None:
    """A flag of the other driver would be ignored: refused instead."""
    for driver, names in _DRIVER_FLAGS.items():
        if driver == opts.driver:
            continue
        for name in names:
            if opts.changed(name):
                raise MachineError(f"--{name} is an option of the {driver} driver, not of "
                                   f"{opts.driver}")


def _active_url() -> str:
    return os.environ.get("DOCKER_HOST", "")


def _row(machine: store.Machine) -> dict[str, str]:
    state = lifecycle.state(machine)
    row = {"Name": machine.name, "Active": "-", "ActiveHost": False, "DriverName":
           machine.driver_name, "State": state, "URL": "", "DockerVersion": "Unknown",
           "Error": "", "ResponseTime": ""}
    if state == "Running":
        row["URL"] = machine.url
        row["Active"] = "*" if _active_url() == machine.url else "-"
        row["ActiveHost"] = row["Active"] == "*"
        try:
            row["DockerVersion"] = "v" + qemu.wait_engine(machine, timeout=2)
        except MachineError as err:
            row["Error"] = str(err)
    return row  # type: ignore[return-value]


def _matches(row: dict[str, str], filters: list[str]) -> bool:
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key.lower() not in ("name", "driver", "state"):
            raise MachineError(f"Unsupported filter key '{key}'")
        wanted.setdefault(key.lower(), []).append(value)
    fields = {"name": row["Name"], "driver": row["DriverName"], "state": row["State"]}
    return all(any(fields[k].lower() == v.lower() for v in vs) for k, vs in wanted.items())


def ls(opts: Options, _args: list[str]) -> int:
    rows = [r for r in (_row(_load(n)) for n in store.names()) if _matches(r, opts.filter)]
    if opts.quiet:
        write("".join(r["Name"] + "\n" for r in rows))
        return 0
    if opts.format:
        from moorage.cli.common import template

        write("".join(template(opts.format, r) + "\n" for r in rows))
        return 0
    lines = ["NAME\tACTIVE\tDRIVER\tSTATE\tURL\tENGINE\tERRORS"]
    lines += [f"{r['Name']}\t{r['Active']}\t{r['DriverName']}\t{r['State']}\t{r['URL']}\t"
              f"{r['DockerVersion']}\t{r['Error']}" for r in rows]
    write(tabulate(lines))
    return 0


def _each(args: list[str], action: Callable[[store.Machine], None]) -> int:
    for name in args:
        action(_load(name))
    return 0


def start(_opts: Options, args: list[str]) -> int:
    from moorage.machine.progress import Progress

    def one(machine: store.Machine) -> None:
        write(f'Starting "{machine.name}"...\n')
        lifecycle.start(machine, Progress(machine.name))
        write(f'Machine "{machine.name}" was started.\n')
    _each(args, one)
    write("Started machines may have new IP addresses. You may need to re-run the "
          "`moor machine env` command.\n")
    return 0


def stop(_opts: Options, args: list[str]) -> int:
    def one(machine: store.Machine) -> None:
        write(f'Stopping "{machine.name}"...\n')
        lifecycle.stop(machine)
        write(f'Machine "{machine.name}" was stopped.\n')
    return _each(args, one)


def restart(_opts: Options, args: list[str]) -> int:
    from moorage.machine.progress import Progress

    def one(machine: store.Machine) -> None:
        write(f'Restarting "{machine.name}"...\n')
        lifecycle.stop(machine)
        lifecycle.start(machine, Progress(machine.name))
    _each(args, one)
    write("Restarted machines may have new IP addresses. You may need to re-run the "
          "`moor machine env` command.\n")
    return 0


def kill(_opts: Options, args: list[str]) -> int:
    def one(machine: store.Machine) -> None:
        write(f'Killing "{machine.name}"...\n')
        lifecycle.kill(machine)
        write(f'Machine "{machine.name}" was killed.\n')
    return _each(args, one)


def rm(opts: Options, args: list[str]) -> int:
    if not (opts.y or opts.force):
        write("About to remove " + ", ".join(args) + "\nWARNING: This action will delete "
              "both local reference and remote instance.\nAre you sure? (y/n): ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    failed = []
    for name in args:
        try:
            left = lifecycle.remove(_load(name))
            if left:
                write(left + "\n")
            write(f"Successfully removed {name}\n")
        except MachineError as err:
            if not opts.force:
                failed.append(str(err))
            elif os.path.isdir(store.machine_dir(name)):
                import shutil

                shutil.rmtree(store.machine_dir(name), ignore_errors=True)
                lifecycle.remove_context(name)
    if failed:
        raise MachineError("\n".join(failed))
    return 0


def status(_opts: Options, args: list[str]) -> int:
    write(lifecycle.state(_load(args[0])) + "\n")
    return 0


def inspect(opts: Options, args: list[str]) -> int:
    machine = _load(args[0])
    if opts.format:
        from moorage.cli.common import template

        write(template(opts.format, machine.config) + "\n")
    else:
        write(indented_json(machine.config) + "\n")
    return 0


def _running(name: str) -> store.Machine:
    machine = _load(name)
    if lifecycle.state(machine) != "Running":
        raise MachineError('Host is not running')
    return machine


def ip(_opts: Options, args: list[str]) -> int:
    write("".join(_running(n).ip + "\n" for n in args))
    return 0


def url(_opts: Options, args: list[str]) -> int:
    write(_running(args[0]).url + "\n")
    return 0


def _shell(opts: Options) -> str:
    shell = opts.shell or os.path.basename(os.environ.get("SHELL", "bash"))
    if shell not in ("bash", "sh", "zsh", "fish", "powershell", "cmd"):
        raise MachineError(f"Unknown shell: {shell}")
    return shell


def env(opts: Options, args: list[str]) -> int:
    shell = _shell(opts)
    if opts.unset:
        values = dict.fromkeys(_ENV_NAMES, "")
        name = ""
    else:
        if not args:
            raise MachineError("Error: No machine name(s) specified and no \"default\" machine "
                               "exists")
        machine = _running(args[0])
        name = machine.name
        values = {"DOCKER_TLS_VERIFY": "1", "DOCKER_HOST": machine.url,
                  "DOCKER_CERT_PATH": machine.dir, "DOCKER_MACHINE_NAME": machine.name}
    lines = []
    for key, value in values.items():
        if shell == "fish":
            lines.append(f"set -e {key};" if opts.unset else f'set -gx {key} "{value}";')
        elif shell == "powershell":
            lines.append(f"Remove-Item Env:\\\\{key}" if opts.unset
                         else f'$Env:{key} = "{value}"')
        elif shell == "cmd":
            lines.append(f"SET {key}=" if opts.unset else f"SET {key}={value}")
        else:
            lines.append(f"unset {key}" if opts.unset else f'export {key}="{value}"')
    target = "-u" if opts.unset else name
    hint = {"fish": f"eval (moor machine env {target})",
            "powershell": f'& "moor" machine env {target} | Invoke-Expression',
            "cmd": f'@FOR /f "tokens=*" %i IN (\'"moor" machine env {target}\') DO @%i'
            }.get(shell, f"eval $(moor machine env {target})")
    comment = "REM" if shell == "cmd" else "#"
    write("\n".join(lines) + f"\n{comment} Run this command to configure your shell: \n"
          f"{comment} {hint}\n")
    return 0


def config(_opts: Options, args: list[str]) -> int:
    machine = _running(args[0])
    write(f'--tlsverify\n--tlscacert="{machine.path("ca.pem")}"\n'
          f'--tlscert="{machine.path("cert.pem")}"\n--tlskey="{machine.path("key.pem")}"\n'
          f"-H={machine.url}\n")
    return 0


def ssh(_opts: Options, args: list[str]) -> int:
    from moorage.machine import ssh as machine_ssh

    machine = _running(args[0])
    sys.stdout.flush()
    try:
        return machine_ssh.session(machine, args[1:])
    except machine_ssh.ConnectError as err:
        # OpenSSH's exit status, which scripts test for, on the message's own line
        raise CommandError(str(err), machine_ssh.CONNECT_FAILED) from None


def scp(opts: Options, args: list[str]) -> int:
    from moorage.machine import ssh as machine_ssh

    machine_ssh.copy(_running, args[0], args[1], opts.recursive)
    return 0


def regenerate_certs(opts: Options, args: list[str]) -> int:
    if not opts.force:
        write("Regenerate TLS machine certs?  Warning: this is irreversible. (y/n): ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    for name in args:
        write("Regenerating TLS certificates\n")
        lifecycle.regenerate_certs(_running(name), opts.client_certs)
    return 0


def upgrade(_opts: Options, args: list[str]) -> int:
    for name in args:
        machine = _running(name)
        write(f"Upgrading moorage on {name}...\n")
        version = lifecycle.upgrade(machine)
        write(f"Restarted the engine: moorage {version}\n")
    return 0


def active(_opts: Options, _args: list[str]) -> int:
    host = _active_url()
    for name in store.names():
        machine = _load(name)
        if host and machine.url == host and lifecycle.state(machine) == "Running":
            write(name + "\n")
            return 0
    raise MachineError("No active host found")


_FORCE = flag("f|force", BOOL, "Remove local configuration even if machine cannot be removed")

SPECS = {
    "create": Spec("[OPTIONS] NAME", _guard(create, "Error creating machine: "), (
        flag("d|driver", STR, "Driver to create machine with.", "qemu"),
        flag("qemu-cpus", INT, "Number of CPUs for the machine", lifecycle.DEFAULT_CPUS),
        flag("qemu-memory", INT, "Size of memory for the machine (in MB)",
             lifecycle.DEFAULT_MEMORY_MB),
        flag("qemu-disk-size", INT, "Size of the disk for the machine (in MB)",
             lifecycle.DEFAULT_DISK_MB),
        flag("qemu-image", STR, "A prebuilt machine image: a folder with disk.qcow2, vmlinuz "
                                "and initrd.img"),
        flag("generic-ip-address", STR, "IP Address of machine"),
        flag("generic-ssh-port", INT, "SSH port", 22),
        flag("generic-ssh-user", STR, "SSH user", "root"),
        flag("generic-ssh-key", STR, "SSH private key path"),
        flag("generic-engine-port", INT, "Docker engine port", 2376)), min_args=1, max_args=1),
    "ls": Spec("[OPTIONS]", _guard(ls), (
        flag("q|quiet", BOOL, "Enable quiet mode"),
        flag("f|format", STR, "Pretty-print machines using a Go template"),
        flag("filter", LIST, "Filter output based on conditions provided")), max_args=0),
    "start": Spec("[NAME...]", _guard(start), min_args=1),
    "stop": Spec("[NAME...]", _guard(stop), min_args=1),
    "restart": Spec("[NAME...]", _guard(restart), min_args=1),
    "kill": Spec("[NAME...]", _guard(kill), min_args=1),
    "rm": Spec("[OPTIONS] [NAME...]", _guard(rm), (
        _FORCE, flag("y|y", BOOL, "Assumes automatic yes to proceed with remove, without "
                                "prompting further user confirmation")), min_args=1),
    "status": Spec("[NAME]", _guard(status), min_args=1, max_args=1),
    "inspect": Spec("[OPTIONS] [NAME]", _guard(inspect), (
        flag("f|format", STR, "Format the output using the given go template"),),
        min_args=1, max_args=1),
    "ip": Spec("[NAME...]", _guard(ip), min_args=1),
    "url": Spec("[NAME]", _guard(url), min_args=1, max_args=1),
    "env": Spec("[OPTIONS] [NAME]", _guard(env), (
        flag("shell", STR, "Force environment to be configured for a specified shell: "
                           "[fish, cmd, powershell], default is auto-detect"),
        flag("u|unset", BOOL, "Unset variables instead of setting them")), max_args=1),
    "config": Spec("[NAME]", _guard(config), min_args=1, max_args=1),
    "ssh": Spec("NAME [COMMAND...]", _guard(ssh), min_args=1, interspersed=False),
    "scp": Spec("[OPTIONS] [[user@]machine:][path] [[user@]machine:][path]", _guard(scp), (
        flag("r|recursive", BOOL, "Copy files recursively (required to copy directories)"),),
        min_args=2, max_args=2),
    "regenerate_certs": Spec("[OPTIONS] [NAME...]", _guard(regenerate_certs), (
        flag("f|force", BOOL, "Force rebuild and do not prompt"),
        flag("client-certs", BOOL, "Also regenerate client certificates and CA.")),
        min_args=1),
    "upgrade": Spec("[NAME...]", _guard(upgrade), min_args=1),
    "active": Spec("", _guard(active), max_args=0),
}
