"""critest's own benchmarks side by side: the median of each operation in the JSON files
`critest -benchmark -benchmarking-output-dir DIR` leaves, for moord and for containerd
(see bench/critest-benchmark.yml for the runs), with the ratio moord/containerd.

    .venv/bin/python bench/critest_summary.py MOORD_DIR CONTAINERD_DIR
"""

from __future__ import annotations

import json
import os
import statistics
import sys


def medians(directory: str) -> dict[str, float]:
    """(benchmark: operation) -> median seconds, over every *_benchmark_data.json."""
    found: dict[str, float] = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith("_benchmark_data.json"):
            continue
        with open(os.path.join(directory, name)) as f:
            data = json.load(f)
        benchmark = name.removesuffix("_benchmark_data.json")
        for index, operation in enumerate(data["operationsNames"]):
            found[f"{benchmark}: {operation}"] = statistics.median(
                point["operationsDurationsNs"][index] for point in data["datapoints"]) / 1e9
    return found


def main() -> None:
    ours, peer = medians(sys.argv[1]), medians(sys.argv[2])
    load = os.getloadavg()
    print(f"load average now {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'median (s)':40} {'moord':>8} {'containerd':>11} {'ratio':>7}")
    for key, value in ours.items():
        other = peer.get(key)
        ratio = f"{value / other:.2f}x" if other else ""
        shown = f"{other:11.4f}" if other is not None else f"{'':11}"
        print(f"{key:40} {value:8.4f} {shown} {ratio:>7}")


if __name__ == "__main__":
    main()
