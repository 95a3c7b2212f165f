"""openat2 under RESOLVE_IN_ROOT answers EAGAIN when any rename on the host races a ".."
step; the wrapper retries as the kernel asks, so a busy host never makes an image's
/etc/passwd look missing (seen as "unable to find user" once in a full suite run)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from moorage.linux import libc


def test_dotdot_resolution_survives_concurrent_renames(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text("app:x:1:1::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to("../../../../real/passwd")
    churned = tmp_path / "a"
    churned.mkdir()
    done = threading.Event()

    def rename_forever() -> None:
        while not done.is_set():
            os.rename(churned, tmp_path / "b")
            os.rename(tmp_path / "b", churned)

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    churner = threading.Thread(target=rename_forever)
    churner.start()
    try:
        for _ in range(20000):
            os.close(libc.openat2(root_fd, "etc/passwd", os.O_RDONLY,
                                  libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS))
    finally:
        done.set()
        churner.join()
        os.close(root_fd)
