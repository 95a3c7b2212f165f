"""atomic_write: the whole new content or the old, with the mode asked for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from moorage.fsutil import atomic_write


def test_replaces_with_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("old")
    old_umask = os.umask(0o077)
    try:
        atomic_write(str(target), '{"new": true}', 0o644)
    finally:
        os.umask(old_umask)
    assert target.read_text() == '{"new": true}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    atomic_write(str(target), b"\x00" * 300_000, 0o600, sync=False)
    assert target.read_bytes() == b"\x00" * 300_000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["config.json"]


def test_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    (target / "child").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write(str(target), "data")
    assert sorted(os.listdir(tmp_path)) == ["dir-in-the-way"]
