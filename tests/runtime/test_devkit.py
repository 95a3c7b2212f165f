"""The busybox bundle builder itself: the fixtures every other runtime test stands on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from moorage.devkit import busybox


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed")
def test_default_config_is_runc_spec(tmp_path: Path) -> None:
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert busybox.default_config(["sh"], terminal=True) == spec


def test_default_config_is_a_fresh_copy() -> None:
    a = busybox.default_config(["true"])
    a["mounts"].clear()
    assert busybox.default_config(["true"])["mounts"]


def test_rootfs_layout(busybox_rootfs: str) -> None:
    root = Path(busybox_rootfs)
    assert (root / "bin/busybox").is_file() and not (root / "bin/busybox").is_symlink()
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert (root / "bin/true").is_symlink()
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        assert (root / d).is_dir(), d
    passwd = (root / "etc/passwd").read_text()
    assert "app:x:1000:1000:" in passwd and "nobody:x:65534:65534:" in passwd
    assert "app:x:1000:" in (root / "etc/group").read_text()
