"""`docker logs` on a large json-file log, moord vs dockerd side by side.

    .venv/bin/python bench/logs.py [--mb 1024] [--runs 3]

Each daemon gets a stopped container whose json-file log is then filled with
`--mb` megabytes of entries (written straight into its LogPath, the same lines for
both, one second of time per 100k entries) so that the reading is what is timed:
`logs --tail 10`, `logs --since` the last second, `logs --until` the first second
and `logs --since --until` a second in the middle, each through the real docker
CLI, alternating between the daemons; median of `--runs`, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from benchkit import moord_and_dockerd

_START = 1_700_000_000  # the first entry's second
_PER_SECOND = 100_000


def _stamp(index: int) -> str:
    seconds, rest = divmod(index, _PER_SECOND)
    clock = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_START + seconds))
    return f"{clock}.{rest * 10_000:09d}Z"


def fill(path: str, megabytes: int) -> int:
    """Entries appended to `path` until it holds `megabytes`; how many."""
    target = megabytes << 20
    index = 0
    with open(path, "ab") as f:
        while f.tell() < target:
            chunk = []
            for _ in range(10_000):
                chunk.append(f'{{"log":"entry {index} of the benchmark log\\n","stream":'
                             f'"stdout","time":"{_stamp(index)}"}}\n')
                index += 1
            f.write("".join(chunk).encode())
    return index


def timed(docker: object, *args: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = docker(*args, timeout=600)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"logs {args}: {done.stderr.decode()}")
    return elapsed, done.stdout.count(b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moor-bench-logs-") as base, \
            moord_and_dockerd(base) as pair:
        engines = {"moord": pair.moord.docker, "dockerd": pair.dockerd.docker}
        entries = 0
        for docker in engines.values():
            docker("run", "--name", "big", "busybox:latest", "true", check=True)
            path = docker("inspect", "-f", "{{.LogPath}}", "big").stdout.decode().strip()
            entries = fill(path, args.mb)
        last = entries // _PER_SECOND
        middle = last // 2
        when = {n: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_START + n))
                for n in (1, middle, middle + 1, last)}
        print(f"log: {args.mb} MB, {entries} entries")
        cases = {"--tail 10": ("--tail", "10"), "--since (last second)": (
            "--since", when[last]), "--until (first second)": ("--until", when[1]),
            "--since --until (a middle second)": ("--since", when[middle],
                                                  "--until", when[middle + 1])}
        for label, options in cases.items():
            figures: dict[str, list[float]] = {name: [] for name in engines}
            counts = {}
            for _ in range(args.runs):
                for name, docker in engines.items():
                    elapsed, counts[name] = timed(docker, "logs", *options, "big")
                    figures[name].append(elapsed)
            ours, theirs = (statistics.median(figures[n]) for n in ("moord", "dockerd"))
            print(f"logs {label}: moord {ours:.3f} s ({counts['moord']} lines), "
                  f"dockerd {theirs:.3f} s ({counts['dockerd']} lines), "
                  f"ratio {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
