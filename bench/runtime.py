"""Benchmark: `run` of /bin/true under moor-runtime, runc and crun on one busybox bundle.

Runs alternate between runtimes so drift (page cache, CPU frequency, other load)
spreads evenly over all of them. Prints median and p90 wall time per runtime and
the ratios the issue tracks (moor/runc, moor/crun). Stdlib only.

    .venv/bin/python bench/runtime.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from moorage.devkit import busybox

RUNTIMES = {
    "moor-runtime": str(Path(sys.executable).parent / "moor-runtime"),
    "runc": shutil.which("runc") or "/usr/sbin/runc",
    "crun": shutil.which("crun") or "/usr/bin/crun",
}


def crun_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same container minus the cgroup bits crun 1.8 chokes on in hybrid mode."""
    cfg = dict(cfg)
    cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "cgroup"]
    linux = dict(cfg["linux"])
    linux.pop("resources", None)
    cfg["linux"] = linux
    return cfg


Completed = subprocess.CompletedProcess[bytes]


def run_once(binary: str, root: str, bundle: str) -> tuple[float, Completed]:
    cid = f"moor-bench-{secrets.token_hex(6)}"
    t0 = time.perf_counter()
    p = subprocess.run(
        [binary, "--root", root, "run", "--bundle", bundle, cid],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        # A failed run may leave state behind; clean it outside the timed region.
        subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True)
    return elapsed, p


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q * (len(s) - 1))))
    return s[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="moor-bench-"))
    try:
        rootfs = str(work / "rootfs")
        busybox.build_rootfs(rootfs)
        cfg = busybox.default_config(["/bin/true"])
        bundles = {
            "moor-runtime": busybox.make_bundle(str(work / "b-moor"), cfg, rootfs),
            "runc": busybox.make_bundle(str(work / "b-runc"), cfg, rootfs),
            "crun": busybox.make_bundle(str(work / "b-crun"), crun_config(cfg), rootfs),
        }
        roots = {name: str(work / f"state-{name}") for name in RUNTIMES}

        usable: list[str] = []
        unusable: dict[str, str] = {}
        for name, binary in RUNTIMES.items():
            if not os.access(binary, os.X_OK):
                unusable[name] = f"{binary} not found"
                continue
            _, p = run_once(binary, roots[name], bundles[name])
            if p.returncode != 0:
                msg = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
                unusable[name] = msg[-1] if msg else f"exit status {p.returncode}"
                continue
            usable.append(name)
        for _ in range(args.warmup):
            for name in usable:
                run_once(RUNTIMES[name], roots[name], bundles[name])

        times: dict[str, list[float]] = {name: [] for name in usable}
        failures: dict[str, int] = {name: 0 for name in usable}
        for _ in range(args.runs):
            for name in usable:
                elapsed, p = run_once(RUNTIMES[name], roots[name], bundles[name])
                if p.returncode == 0:
                    times[name].append(elapsed)
                else:
                    failures[name] += 1

        print(f"run /bin/true, {args.runs} alternating runs each (ms)")
        print(f"{'runtime':<14}{'median':>9}{'p90':>9}{'min':>9}{'failed':>8}")
        medians: dict[str, float] = {}
        for name in usable:
            xs = times[name]
            if not xs:
                print(f"{name:<14}{'-':>9}{'-':>9}{'-':>9}{failures[name]:>8}")
                continue
            medians[name] = statistics.median(xs)
            print(
                f"{name:<14}{medians[name] * 1e3:>9.1f}{percentile(xs, 0.9) * 1e3:>9.1f}"
                f"{min(xs) * 1e3:>9.1f}{failures[name]:>8}"
            )
        for name, why in unusable.items():
            label = "cannot run here" if name != "moor-runtime" else "first run failed"
            print(f"{name}: {label}: {why}")
        for peer in ("runc", "crun"):
            if "moor-runtime" in medians and peer in medians:
                print(f"ratio moor/{peer}: {medians['moor-runtime'] / medians[peer]:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
