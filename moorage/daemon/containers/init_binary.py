"""Where the daemon finds moor-init, the init it binds into `--init` containers.

moor-init is a static binary (a container's rootfs has no libc of ours) built
from data/moor-init.c at install time (`make deps`, or before building a wheel),
never by the daemon: a compiler is not a run-time dependency.
"""

from __future__ import annotations

import os

from moorage.errors import SystemFailure

MOOR_INIT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "moor-init")


def moor_init_path() -> str:
    """The host path of moor-init; SystemFailure when the install did not build it."""
    if not os.access(MOOR_INIT, os.X_OK):
        raise SystemFailure(f"moor-init is missing at {MOOR_INIT}: it is built when moorage is "
                          "installed (make deps, or gcc -static -Os -s -o moor-init "
                          "moor-init.c in that folder)")
    return MOOR_INIT
