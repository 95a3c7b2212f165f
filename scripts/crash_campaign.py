"""A longer crash campaign than the test's: `python scripts/crash_campaign.py --kills 40`.

moord is killed with SIGKILL at random moments of image loads and removals, container
runs, stops and removals, a log-heavy container and a restart policy's restarts
(tests/engine/crashkit.py); prints the kills, the moments they hit and the faults found.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "engine"), os.path.join(HERE, "..", "tests")]

from crashkit import campaign  # noqa: E402

from moorage.devkit import busybox  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moor-crash-") as base:
        tar = busybox.image_tar(os.path.join(base, "rootfs"))
        work = os.path.join(base, "daemon")
        os.mkdir(work)
        outcome = campaign(work, tar, args.kills, args.seed, say=print)
    print(f"kills: {outcome.kills}")
    for what, count in sorted(outcome.survived.items()):
        print(f"  killed during {what}: {count}")
    print(f"faults: {len(outcome.faults)}")
    for fault in outcome.faults:
        print(f"  {fault}")
    return 1 if outcome.faults else 0


if __name__ == "__main__":
    sys.exit(main())
