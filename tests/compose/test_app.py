"""A realistic application, not only busybox: a Python web service counting visits in Redis
and storing them in PostgreSQL, all three built from a Debian base made with mmdebstrap
(tests/compose/app), brought up with healthchecks and start-up gated on health."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from composekit import ComposeEngine
from peers import in_netns
from registrykit import free_port
from test_up import ok

APP = Path(__file__).parent / "app"

# On a new machine the first test to ask for the Debian app base makes it (mmdebstrap,
# 40-90 s) in its setup, which pytest-timeout counts against the test.
pytestmark = pytest.mark.timeout(600)


def fetch(engine: ComposeEngine, port: int, path: str = "/") -> str:
    """GET on 127.0.0.1 where the engine publishes (a peer dockerd's own namespace)."""
    return subprocess.run(in_netns(getattr(engine.daemon, "netns", ""), sys.executable, "-c",
                                   "import sys, urllib.request; sys.stdout.write(urllib.request"
                                   f".urlopen('http://127.0.0.1:{port}{path}').read().decode())"),
                          capture_output=True, text=True, check=True, timeout=30).stdout


def test_web_redis_postgres_up_wait_survive_down_and_down_v(
        engine: ComposeEngine, debian_app_tar: str, tmp_path: Path) -> None:
    folder = tmp_path / "visits"
    shutil.copytree(APP, folder)
    port = free_port()
    (folder / ".env").write_text(f"WEB_PORT={port}\n")
    engine.docker("import", debian_app_tar, "moor-debian-app:bookworm", check=True)
    try:
        ok(engine.compose(folder, "up", "-d", "--wait", timeout=600))
        web = json.loads(engine.docker("inspect", "visits-web-1", check=True).stdout)[0]
        assert web["State"]["Health"]["Status"] == "healthy"
        assert fetch(engine, port) == "visit 1, stored 1\n"
        assert fetch(engine, port) == "visit 2, stored 2\n"
        ok(engine.compose(folder, "down"))
        assert engine.docker("ps", "-aq").stdout == b""
        ok(engine.compose(folder, "up", "-d", "--wait", timeout=300))
        assert fetch(engine, port) == "visit 3, stored 3\n"  # both named volumes kept
        ok(engine.compose(folder, "down", "-v"))
        assert engine.docker("ps", "-aq").stdout == b""
        volumes = engine.docker("volume", "ls", "-q", check=True).stdout.decode().split()
        assert not [v for v in volumes if v.startswith("visits_")]
        assert b"visits_default" not in engine.docker("network", "ls", check=True).stdout
    finally:
        ok(engine.compose(folder, "down", "-v", "--rmi", "all"))
        engine.docker("rmi", "moor-debian-app:bookworm")
