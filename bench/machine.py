"""`moor machine` with the qemu driver: the one-time image build, a create with the image
cached (to an engine that answers), a start of a stopped machine, and
`moor run --rm busybox true` through TLS into the VM next to the same run against a
local moord on its unix socket, `machine ssh NAME true` next to OpenSSH's ssh; then the
generic driver: a create that provisions a second VM booted bare (over SSH, the
dependency bundle cached) and a start of its stopped engine.

    .venv/bin/python bench/machine.py [--runs 10] [--no-build]

--no-build skips the cold image build (it then uses the cached image, building it
first if missing, untimed). KVM guests hang on this host, so every figure is TCG.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine"),
                os.path.join(ROOT, "tests", "machine")]

from enginekit import start_daemon, stop_daemon  # noqa: E402
from machinekit import BARE_USER, bare_vm  # noqa: E402

from moorage.devkit import busybox  # noqa: E402

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")


def qemu_cpu(env: dict[str, str], name: str) -> float:
    """The VM's qemu process's CPU seconds so far: what a boot costs, whatever the load
    (wall time on the shared cores is mostly waiting for them)."""
    machines = os.path.join(env["MOOR_MACHINE_STORAGE_PATH"], "machines")
    with open(os.path.join(machines, name, "qemu.pid")) as f:
        pid = int(f.read())
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def timed(argv: list[str], env: dict[str, str], input: bytes | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=input, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{argv}: {done.stderr.decode()}")
    return elapsed


def median_run(argv: list[str], env: dict[str, str], runs: int) -> float:
    timed(argv, env)
    return statistics.median(timed(argv, env) for _ in range(runs))


def ssh_figure(env: dict[str, str], name: str, runs: int) -> tuple[str, str]:
    """`moor machine ssh NAME true` (asyncssh in-process, its import included) next to
    OpenSSH's `ssh` with the same key and known_hosts."""
    import json

    folder = os.path.join(env["MOOR_MACHINE_STORAGE_PATH"], "machines", name)
    with open(os.path.join(folder, "config.json")) as f:
        port = json.load(f)["Driver"]["SSHPort"]
    openssh = ["ssh", "-i", os.path.join(folder, "id_ed25519"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={os.path.join(folder, 'known_hosts')}",
               "-o", f"HostKeyAlias=moor-machine-{name}", "-o", "StrictHostKeyChecking=yes",
               "-o", "BatchMode=yes", "-p", str(port), "root@127.0.0.1", "true"]
    moor = median_run([MOOR, "machine", "ssh", name, "true"], env, runs)
    peer = median_run(openssh, env, runs)
    return ("machine ssh NAME true: moor (asyncssh) / OpenSSH ssh",
            f"{moor * 1000:.0f} ms / {peer * 1000:.0f} ms = {moor / peer:.1f}x")


def generic(base: str, env: dict[str, str]) -> list[tuple[str, str]]:
    from pathlib import Path

    name = f"generic{os.getpid()}"
    vm = bare_vm(Path(base) / "bare")
    bare = next(vm)
    try:
        create = timed([MOOR, "machine", "create", "--driver", "generic",
                        "--generic-ip-address", "127.0.0.1", "--generic-ssh-port",
                        str(bare.ssh_port), "--generic-ssh-user", BARE_USER,
                        "--generic-ssh-key", str(bare.key),
                        "--generic-engine-port", str(bare.engine_port), name], env)
        timed([MOOR, "machine", "stop", name], env)
        start = timed([MOOR, "machine", "start", name], env)
    finally:
        subprocess.run([MOOR, "machine", "rm", "-f", "-y", name], env=env,
                       capture_output=True, check=False)
        vm.close()  # its finally kills the VM
    return [("generic create, bare TCG VM, systemd, sudo (to an engine that answers)",
             f"{create:.1f} s"), ("generic start of its stopped engine", f"{start:.1f} s")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moor-bench-machine-") as base:
        env = {**os.environ, "MOOR_MACHINE_STORAGE_PATH": os.path.join(base, "storage"),
               "DOCKER_CONFIG": os.path.join(base, "docker-config")}
        env.setdefault("MOOR_MACHINE_CACHE", "/var/tmp/moorage-machine-cache")
        figures: list[tuple[str, str]] = []
        if not args.no_build:
            env["MOOR_MACHINE_CACHE"] = os.path.join(base, "cache")
            at = load()
            build = timed([sys.executable, "-c", "from moorage.machine import image; "
                           "image.ensure()"], env)
            figures.append(("image build (mmdebstrap, wheels, mkfs.ext4 -d)",
                            f"{build:.1f} s, load {at}"))
        else:
            timed([sys.executable, "-c", "from moorage.machine import image; image.ensure()"],
                  env)
        name = f"bench{os.getpid()}"
        os.mkdir(os.path.join(base, "local"))
        local = start_daemon(os.path.join(base, "local"))
        try:
            rootfs = os.path.join(base, "rootfs")
            busybox.build_rootfs(rootfs)
            tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                                 check=True).stdout
            local.docker("import", "-", "busybox:latest", input=tar, check=True)
            at = load()
            create = timed([MOOR, "machine", "create", "--qemu-memory", "512", name], env)
            figures.append(("create, image cached (to an engine that answers)",
                            f"{create:.1f} s, VM CPU {qemu_cpu(env, name):.1f} s, load {at}"))
            saved = local.docker("save", "busybox:latest", check=True).stdout
            timed(["docker", "--context", name, "load"], env, input=saved)
            timed([MOOR, "machine", "stop", name], env)
            at = load()
            start = timed([MOOR, "machine", "start", name], env)
            figures.append(("start of a stopped machine",
                            f"{start:.1f} s, VM CPU {qemu_cpu(env, name):.1f} s, load {at}"))
            through_vm = median_run([MOOR, "--context", name, "run", "--rm", "busybox", "true"],
                                    env, args.runs)
            on_host = median_run([MOOR, "-H", local.host, "run", "--rm", "busybox", "true"],
                                 env, args.runs)
            figures.append(("run --rm busybox true: machine (TLS, TCG) / local moord",
                            f"{through_vm * 1000:.0f} ms / {on_host * 1000:.0f} ms = "
                            f"{through_vm / on_host:.1f}x"))
            figures.append(ssh_figure(env, name, args.runs))
        finally:
            subprocess.run([MOOR, "machine", "rm", "-f", "-y", name], env=env,
                           capture_output=True, check=False)
            stop_daemon(local)
        figures += generic(base, env)
    print(f"moor machine (qemu and generic drivers, TCG), load at the end {load()}")
    for what, figure in figures:
        print(f"  {what:<66} {figure}")


if __name__ == "__main__":
    main()
