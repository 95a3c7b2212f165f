"""daemon.json and flags merged into the daemon's configuration."""

from __future__ import annotations

from moorage.daemon.config import build


def test_defaults_without_a_file_or_flags() -> None:
    """moord with no --data-root/--exec-root (a machine's guest once crashed on it)."""
    config = build({}, {})
    assert (config.data_root, config.exec_root) == ("/var/lib/moor", "/run/moor")


def test_flags_win_over_the_file() -> None:
    config = build({"data-root": "/from/file", "exec-root": "/run/file"},
                   {"data-root": "/from/flag", "exec-root": None})
    assert (config.data_root, config.exec_root) == ("/from/flag", "/run/file")
