"""Benchmark: our registry vs the CNCF distribution registry, side by side on 127.0.0.1.

* blob GET throughput of a 100 MB blob (curl, median MB/s over alternating runs);
* manifest GET requests/second with 32 concurrent connections (wrk, one thread, so
  the load generator takes one of the machine's cores at most).

Both servers write an access log (ours JSON lines, distribution its combined log).
Needs curl and wrk (``apt-get install -y wrk``).

    .venv/bin/python bench/registry.py [--runs 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "registry"))
from registrykit import (  # noqa: E402  (the test suite's server helpers)
    Server,
    image_manifest,
    push_blob,
    put_manifest,
    start_distribution,
    start_moor,
    stop_server,
)

BLOB_MB = 100
REPO = "bench/app"
ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def blob_mb_per_s(server: Server, digest: str) -> float:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
         f"{server.url}/v2/{REPO}/blobs/{digest}"],
        capture_output=True, text=True, check=True).stdout.split()
    assert int(float(out[1])) == BLOB_MB * 1024 * 1024, out
    return float(out[0]) / 1e6


def manifest_rps(server: Server, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-H", f"Accept: {ACCEPT}",
         f"{server.url}/v2/{REPO}/manifests/latest"],
        capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{server.kind}: wrk saw errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    for tool in ("curl", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 1
    work = tempfile.mkdtemp(prefix="moor-bench-registry-")
    servers: list[Server] = []
    try:
        servers.append(start_moor(os.path.join(work, "moor")))
        servers.append(start_distribution(os.path.join(work, "distribution"), access_log=True))
        blob = os.urandom(BLOB_MB * 1024 * 1024)
        digests = {}
        for server in servers:
            digests[server.kind] = push_blob(server, REPO, blob)
            put_manifest(server, REPO, "latest", image_manifest(server, REPO, layers=3))
        del blob
        throughput: dict[str, list[float]] = {s.kind: [] for s in servers}
        for server in servers:  # warm the page cache and the servers
            blob_mb_per_s(server, digests[server.kind])
        for _ in range(args.runs):
            for server in servers:
                throughput[server.kind].append(blob_mb_per_s(server, digests[server.kind]))
        rps = {s.kind: manifest_rps(s, args.seconds) for s in servers}

        blob_median = {k: statistics.median(v) for k, v in throughput.items()}
        print(f"blob GET, {BLOB_MB} MB, {args.runs} alternating runs (MB/s)")
        print(f"{'registry':<14}{'median':>10}{'min':>10}{'max':>10}")
        for kind, values in throughput.items():
            print(f"{kind:<14}{blob_median[kind]:>10.0f}{min(values):>10.0f}{max(values):>10.0f}")
        print(f"manifest GET, 32 connections, {args.seconds} s (requests/s)")
        for kind, value in rps.items():
            print(f"{kind:<14}{value:>10.0f}")
        blob_ratio = blob_median["moor"] / blob_median["distribution"]
        print(f"ratio blob moor/distribution: {blob_ratio:.2f}")
        print(f"ratio manifest moor/distribution: {rps['moor'] / rps['distribution']:.2f}")
        print(json.dumps({"blob_mb_s": blob_median, "manifest_rps": rps}))
        return 0
    finally:
        for server in servers:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
