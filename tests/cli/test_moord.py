"""What moord already serves, through moor and docker side by side."""

from __future__ import annotations

import subprocess

from clikit import MOOR
from enginekit import Daemon


def run(binary: str, daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "-H", daemon.host, *args], capture_output=True, timeout=30)


def test_version_negotiates_and_matches_docker(moord: Daemon) -> None:
    fmt = "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}"
    ours, theirs = run(MOOR, moord, "version", "--format", fmt), run("docker", moord,
                                                                     "version", "--format", fmt)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    api = run(MOOR, moord, "version", "--format", "{{.Client.APIVersion}}").stdout
    assert api == b"1.50\n"  # min(ours 1.50, moord's 1.55)


def test_info_matches_docker(moord: Daemon) -> None:
    fmt = "{{.ServerVersion}} {{.Images}} {{.Containers}} {{.Driver}} {{.DockerRootDir}}"
    ours, theirs = run(MOOR, moord, "info", "--format", fmt), run("docker", moord,
                                                                  "info", "--format", fmt)
    assert ours.stdout == theirs.stdout and ours.returncode == 0
    assert b"Server Version: " in run(MOOR, moord, "info").stdout
