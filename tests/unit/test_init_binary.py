"""moor-init is built at install time; the daemon only finds it."""

from __future__ import annotations

import os
import subprocess

import pytest

from moorage.daemon.containers import init_binary
from moorage.errors import SystemFailure


def test_built_by_the_install_and_static() -> None:
    path = init_binary.moor_init_path()
    assert os.access(path, os.X_OK)
    # `file` is not installed everywhere; a static ELF has no interpreter segment.
    headers = subprocess.run(["readelf", "-l", path], capture_output=True, text=True).stdout
    assert "INTERP" not in headers


def test_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(init_binary, "MOOR_INIT", f"{tmp_path}/moor-init")
    with pytest.raises(SystemFailure, match=r"moor-init is missing at .*: it is built when"):
        init_binary.moor_init_path()
