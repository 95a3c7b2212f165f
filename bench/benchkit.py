"""What the benchmarks share: the test kits on the path, and moord beside a reference
dockerd, each on its own socket and data-root, with busybox imported into both.

Import it first (`from benchkit import ...`): it puts tests/ and tests/engine/ on the path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine")]

from comparekit import Pair, daemon_pair  # noqa: E402
from enginekit import Daemon, start_daemon, stop_daemon  # noqa: E402

from moorage.devkit import busybox  # noqa: E402


def busybox_image(base: str) -> bytes:
    """A busybox rootfs built under `base`, as the tar `docker import` takes."""
    return busybox.image_tar(os.path.join(base, "rootfs"))


@contextmanager
def moord_and_dockerd(base: str, image: str = "busybox:latest", *,
                      networking: bool = False) -> Iterator[Pair]:
    """moord and dockerd side by side, busybox imported into both as `image`; their
    containers removed and both stopped at the end."""
    with daemon_pair("bench-", image, busybox_image(base), networking) as pair:
        yield pair


@contextmanager
def baseline_moord(base: str, tree: str, image: str = "busybox:latest") -> Iterator[Daemon]:
    """A second moord running the moorage of another source tree (`tree`, e.g. `git
    archive main` unpacked, byte-compiled), with busybox imported as `image`: the
    previous engine beside this one in the same run, so that a change is measured
    A/B on a machine whose load drifts. Its containers removed and it stopped at the end.
    """
    folder = os.path.join(base, "moord-base")
    os.makedirs(folder)
    # moord, its zygote and its shims import moorage from `tree` first. An older zygote
    # is started with `python -m` (no -P), which puts moord's working directory first on
    # sys.path: moord is started in `tree` so that this too is the tree's moorage.
    before, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = os.path.abspath(tree)
    os.chdir(tree)
    try:
        daemon = start_daemon(folder)
    finally:
        os.chdir(cwd)
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    try:
        daemon.docker("import", "-", image, input=busybox_image(folder), check=True)
        yield daemon
    finally:
        daemon.docker("rm", "-f", *daemon.docker("ps", "-aq").stdout.decode().split())
        stop_daemon(daemon)
