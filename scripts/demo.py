"""`make demo`: build a busybox bundle and run containers with moor-runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from moorage.devkit.busybox import build_rootfs, default_config, make_bundle

RUNTIME = os.path.join(os.path.dirname(sys.executable), "moor-runtime")
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


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="moor-demo-") as work:
        root = os.path.join(work, "state")
        rootfs = os.path.join(work, "rootfs")
        build_rootfs(rootfs)
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
        step("create / start / exec / pause / delete")
        config["process"]["args"] = ["sleep", "30"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        for args in (["create", "-b", bundle, "demo2"], ["state", "demo2"], ["start", "demo2"],
                     ["exec", "demo2", "ps"], ["pause", "demo2"], ["list"],
                     ["resume", "demo2"], ["delete", "--force", "demo2"]):
            print(f"$ moor-runtime {' '.join(args)}", flush=True)
            subprocess.run([RUNTIME, "--root", root, *args], check=True)
            print(flush=True)
    return 0 if status == 42 else 1


if __name__ == "__main__":
    sys.exit(main())
