"""The generic driver: an existing Linux host, provisioned over SSH.

The host needs nothing from the internet: the client sends moorage and its
dependencies (the bundle the qemu driver's image carries, built for Python 3.11)
into /opt/moorage, the TLS files into /etc/moor/certs, then starts moord on the
engine port with --tlsverify. With systemd it is the unit moord.service the qemu
image has too (service.py; enabled, so it comes back at boot); without systemd a
shell loop under setsid keeps it up (restarted when it dies) until the host reboots.
`upgrade` and `regenerate-certs` replace files, then `systemctl restart` the unit or
kill moord, which the loop starts again.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile

from moorage.machine import service, ssh
from moorage.machine.errors import MachineError
from moorage.machine.image import GUEST_PYTHON
from moorage.machine.store import Machine

HOME = "/opt/moorage"
SITE = f"{HOME}/lib"
UNIT = f"/etc/systemd/system/{service.NAME}"
SUPERVISOR_PID = "/run/moord-supervisor.pid"
# PYTHONPATH as well: moord's helpers (the shims' zygote) run `python3 -m moorage...`.
# Not the host's dist-packages: the host's own Python packages stay as they were.
_WRAPPER = (f"#!/usr/bin/python3\nimport os\nimport sys\nos.environ['PYTHONPATH'] = {SITE!r}\n"
            f"sys.path.insert(0, {SITE!r})\nfrom moorage.daemon.main import main\n"
            "sys.exit(main())\n")


def _moord(machine: Machine) -> str:
    return service.moord_command(f"{HOME}/bin/moord", machine.engine_port)


def probe(machine: Machine) -> None:
    """First contact: records the host key, checks root, Python and the init system."""
    out = ssh.run_as_root(machine, "python3 -c 'import sys; print(\"%d.%d\" % "
                          "sys.version_info[:2])' || echo none; "
                          "if [ -d /run/systemd/system ]; then echo systemd; else echo none; fi",
                          first_contact=True).split()
    if len(out) != 2:
        raise MachineError(f"unexpected answer {out!r}", "checking the host")
    python, init = out
    if python != GUEST_PYTHON:
        raise MachineError(f"the host's python3 is {python}; moorage's bundle is built for "
                           f"Python {GUEST_PYTHON}", "checking the host")
    machine.driver["Init"] = init
    machine.save()


def bundle(dependencies: str, moorage_copy: str) -> bytes:
    """bin/moord, lib/ (dependencies and moorage, with bytecode) as one tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        wrapper = tarfile.TarInfo("bin/moord")
        wrapper.mode = 0o755
        wrapper.size = len(_WRAPPER)
        tar.addfile(wrapper, io.BytesIO(_WRAPPER.encode()))
        tar.add(dependencies, arcname="lib")
        tar.add(moorage_copy, arcname="lib/moorage")
    return buffer.getvalue()


def install(machine: Machine, tar: bytes) -> None:
    ssh.run_as_root(machine, f"rm -rf {HOME}.new && mkdir -p {HOME}.new && "
                    f"tar -x -C {HOME}.new && rm -rf {HOME} && mv {HOME}.new {HOME}", tar)


def write_certs(machine: Machine) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("ca.pem", "server.pem", "server-key.pem"):
            tar.add(machine.path(name), arcname=name)
    certs = service.CERTS
    ssh.run_as_root(machine, f"mkdir -p -m 700 {certs} && tar -x -C {certs} --no-same-owner "
                    f"&& chmod 600 {certs}/*", buffer.getvalue())


def start(machine: Machine) -> None:
    if machine.driver["Init"] == "systemd":
        ssh.run_as_root(machine, f"cat > {UNIT} && systemctl daemon-reload && "
                        f"systemctl enable --now {service.NAME} && systemctl start {service.NAME}",
                        service.unit(f"{HOME}/bin/moord", machine.engine_port).encode())
        return
    loop = f"echo $$ > {SUPERVISOR_PID}; while :; do {_moord(machine)}; sleep 1; done"
    ssh.run_as_root(machine, f"[ -e {SUPERVISOR_PID} ] && kill -0 $(cat {SUPERVISOR_PID}) "
                    f"2>/dev/null && exit 0; setsid sh -c {shlex.quote(loop)} "
                    ">>/var/log/moord.log 2>&1 </dev/null &")


def stop(machine: Machine, signal: str = "TERM") -> None:
    if machine.driver["Init"] == "systemd":
        verb = "stop" if signal == "TERM" else f"kill -s {signal}"
        ssh.run_as_root(machine, f"[ ! -e {UNIT} ] || systemctl {verb} {service.NAME}")
        return
    # The loop first, so it does not start moord again; then moord, waited for.
    ssh.run_as_root(machine, f"[ -e {SUPERVISOR_PID} ] && kill -{signal} $(cat "
                    f"{SUPERVISOR_PID}) 2>/dev/null; rm -f {SUPERVISOR_PID}; "
                    f"[ -e {service.MOORD_PID} ] || exit 0; p=$(cat {service.MOORD_PID}); "
                    f"kill -{signal} $p 2>/dev/null; i=0; while kill -0 $p 2>/dev/null && "
                    "[ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done")


def uninstall(machine: Machine) -> None:
    """What create installed goes; the engine's data stays (docker-machine's generic
    driver leaves the host as it is)."""
    stop(machine)
    ssh.run_as_root(machine, f"if [ -e {UNIT} ]; then systemctl disable {service.NAME}; "
                    f"rm -f {UNIT}; systemctl daemon-reload; fi; rm -rf {HOME} {HOME}.new "
                    f"{service.CERTS} /var/log/moord.log")


def state(machine: Machine) -> str:
    """Running when the engine answers: a TCP connection alone proves nothing behind a
    port forward."""
    from moorage.machine.qemu import wait_engine

    try:
        wait_engine(machine, timeout=0)
    except MachineError:
        return "Stopped"
    return "Running"


def key_copy(machine: Machine, key: str) -> None:
    """The user's key copied into the store (as docker-machine does): the machine keeps
    working when the original moves."""
    from moorage.machine.paths import write_private

    try:
        with open(key, "rb") as f:
            data = f.read()
    except OSError as err:
        raise MachineError(f"{key}: {err.strerror}", "reading --generic-ssh-key") from None
    write_private(machine.path("id_rsa"), data)
    if os.path.exists(key + ".pub"):
        with open(key + ".pub", "rb") as f:
            write_private(machine.path("id_rsa.pub"), f.read(), 0o644)
