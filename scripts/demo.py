"""`make demo`: containers with moor-runtime, then the engine: moord driven by moor and docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from moorage.devkit.busybox import build_rootfs, default_config, make_bundle

BIN = os.path.dirname(sys.executable)
RUNTIME = os.path.join(BIN, "moor-runtime")
DOCKER = "/usr/local/bin/docker"
PROBE = (
    "echo \"hostname: $(hostname)\"; echo \"user: $(id)\"; "
    "echo \"my pid: $$\"; "
    "echo \"memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
    " || cat /sys/fs/cgroup/memory.max)\"; "
    "echo \"pids limit: $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null)\"; "
    "grep -E 'Cap(Eff|Bnd)|NoNewPrivs|Seccomp:' /proc/self/status; exit 42"
)


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def runtime_demo(work: str, rootfs: str) -> bool:
    root = os.path.join(work, "state")
    config = default_config(["sh", "-c", PROBE])
    config["hostname"] = "moor-demo"
    config["linux"]["cgroupsPath"] = f"/moor-demo-{os.getpid()}"
    config["linux"]["resources"].update({"memory": {"limit": 64 * 1024 * 1024},
                                         "pids": {"limit": 32}})
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    bundle = make_bundle(os.path.join(work, "bundle"), config, rootfs=rootfs)
    step("moor-runtime run: a busybox container, 64 MiB and 32 pids, seccomp, exit 42")
    status = subprocess.run([RUNTIME, "--root", root, "run", "-b", bundle, "demo"],
                            check=False).returncode
    print(f"exit status: {status}")
    step("moor-runtime create / start / exec / pause / delete")
    config["process"]["args"] = ["sleep", "30"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    for args in (["create", "-b", bundle, "demo2"], ["state", "demo2"], ["start", "demo2"],
                 ["exec", "demo2", "ps"], ["pause", "demo2"], ["list"],
                 ["resume", "demo2"], ["delete", "--force", "demo2"]):
        print(f"$ moor-runtime {' '.join(args)}", flush=True)
        subprocess.run([RUNTIME, "--root", root, *args], check=True)
        print(flush=True)
    return status == 42


def engine_demo(work: str, rootfs: str) -> bool:
    socket_path = os.path.join(work, "moord.sock")
    config_file = os.path.join(work, "daemon.json")
    with open(config_file, "w") as f:
        f.write("{}")
    step(f"moord: the engine on unix://{socket_path}")
    with open(os.path.join(work, "moord.log"), "wb") as log:
        daemon = subprocess.Popen(
            [os.path.join(BIN, "moord"), "--data-root", os.path.join(work, "data"),
             "--exec-root", os.path.join(work, "exec"), "-H", f"unix://{socket_path}",
             "--config-file", config_file], stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket_path}",
           "DOCKER_CONFIG": os.path.join(work, "docker-config")}
    try:
        while not os.path.exists(socket_path):
            if daemon.poll() is not None:
                return False
            time.sleep(0.05)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        ok = _show(["moor", "import", "-", "busybox:latest"], env, stdin=tar.stdout)
        tar.wait()
        commands = [
            ["moor", "images"],
            ["moor", "run", "--rm", "busybox", "echo", "hello from a moorage container"],
            ["moor", "run", "-d", "--name", "web", "--memory", "32m", "busybox", "sh", "-c",
             "while :; do date; sleep 1; done"],
            [DOCKER, "ps"],
            ["moor", "exec", "web", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
            ["moor", "logs", "--tail", "2", "web"],
            ["moor", "stop", "-t", "1", "web"],
            [DOCKER, "ps", "-a", "--format", "{{.Names}}: {{.Status}}"],
            ["moor", "rm", "web"],
            ["moor", "system", "check"],
        ]
        for command in commands:
            ok = _show(command, env) and ok
        return ok
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def _show(command: list[str], env: dict[str, str], stdin: object = None) -> bool:
    shown = [os.path.basename(command[0]), *command[1:]]
    print(f"$ {' '.join(shown)}", flush=True)
    executable = command[0] if command[0].startswith("/") else os.path.join(BIN, command[0])
    result = subprocess.run([executable, *command[1:]], env=env, stdin=stdin, check=False)
    print(flush=True)
    return result.returncode == 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="moor-demo-") as work:
        rootfs = os.path.join(work, "rootfs")
        build_rootfs(rootfs)
        ok = runtime_demo(work, rootfs)
        ok = engine_demo(work, rootfs) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
