"""Benchmark: cold pull and push of a ~150 MB, 5-layer image, moord vs dockerd, one run.

The image (random-content layers, gzip) sits in a local CNCF distribution
registry on 127.0.0.1. Pulls alternate between the engines, each followed by
``rmi`` so the next one is cold; pushes go to a fresh, empty registry each
time so every blob is really uploaded. Prints medians, MB/s and the ratios.

    .venv/bin/python bench/pull.py [--runs 3] [--layers 5] [--layer-mb 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine"),
                str(ROOT / "tests" / "registry")]
from enginekit import start_daemon, stop_daemon  # noqa: E402
from peers import start_dockerd, stop_dockerd  # noqa: E402
from registrykit import (  # noqa: E402
    Entry,
    Image,
    Layout,
    layer_tar,
    start_distribution,
    stop_server,
)


def _check(result: object) -> None:
    if getattr(result, "returncode", 1) != 0:
        raise RuntimeError(f"{getattr(result, 'args', '')}: {getattr(result, 'stderr', b'')!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--layer-mb", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as base:
        layout = Layout(os.path.join(base, "layout"))
        layers = [(layer_tar([Entry(f"layer{i}", os.urandom(args.layer_mb << 20))]), "gzip")
                  for i in range(args.layers)]
        layout.tag("v1", layout.image(Image(layers)))
        size_mb = sum(len(t) for t, _ in layers) / 1e6
        registry = start_distribution(os.path.join(base, "registry"))
        engines = {}
        try:
            registry.seed(layout.path, "v1", "bench/big")
            for name in ("moord", "dockerd"):
                os.makedirs(os.path.join(base, name))
            engines["moord"] = start_daemon(os.path.join(base, "moord"))
            engines["dockerd"] = start_dockerd(os.path.join(base, "dockerd"))
            image = f"{registry.host}/bench/big:v1"
            pulls: dict[str, list[float]] = {n: [] for n in engines}
            pushes: dict[str, list[float]] = {n: [] for n in engines}
            for run in range(args.runs):
                for name, engine in engines.items():
                    start = time.perf_counter()
                    _check(engine.docker("pull", "-q", image, timeout=600))
                    pulls[name].append(time.perf_counter() - start)
                    target = start_distribution(os.path.join(base, f"push-{name}-{run}"))
                    try:
                        pushed = f"{target.host}/bench/pushed:v1"
                        _check(engine.docker("tag", image, pushed))
                        start = time.perf_counter()
                        _check(engine.docker("push", "-q", pushed, timeout=600))
                        pushes[name].append(time.perf_counter() - start)
                    finally:
                        stop_server(target)
                    _check(engine.docker("rmi", pushed))
                    _check(engine.docker("rmi", image))
        finally:
            if "moord" in engines:
                stop_daemon(engines["moord"])
            if "dockerd" in engines:
                stop_dockerd(engines["dockerd"])
            stop_server(registry)
    print(f"image: {args.layers} layers, {size_mb:.0f} MB uncompressed, {args.runs} runs")
    for label, results, goal in (("pull", pulls, 1.5), ("push", pushes, 1.0)):
        medians = {n: statistics.median(v) for n, v in results.items()}
        for name, median in medians.items():
            print(f"  {label} {name:8s} median {median:6.2f} s  {size_mb / median:7.1f} MB/s  "
                  f"runs {', '.join(f'{v:.2f}' for v in results[name])}")
        ratio = medians["dockerd"] / medians["moord"]
        print(f"  {label} throughput moord/dockerd: {ratio:.2f}x (goal >= {goal}x)")


if __name__ == "__main__":
    main()
