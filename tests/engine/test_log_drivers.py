"""Log drivers side by side with dockerd: json-file rotation and reading across the
rotated files, local, none, options checked in dockerd's words; and moord's daemon
defaults (--log-driver/--log-opt, as daemon.json's log-driver/log-opts)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from comparekit import Pair, daemon_pair, mask
from enginekit import MOORD, Daemon, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
IMAGE = "busybox:latest"
ROTATED = ("--log-opt", "max-size=1k", "--log-opt", "max-file=3")


UNKNOWN_DRIVER = ("--log-driver", "bogus")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-logs-", IMAGE, busybox_tar) as pair:
        # dockerd looks the unknown driver up as a plugin for 15 s: asked while the rest runs.
        pair.ask_docker_ahead("run", "--rm", *UNKNOWN_DRIVER, IMAGE, "true")
        yield pair


def _name() -> str:
    return f"l-{uuid.uuid4().hex[:8]}"


def _log_files(daemon: Daemon | Dockerd, name: str) -> list[str]:
    path = daemon.docker("inspect", "-f", "{{.LogPath}}", name).stdout.decode().strip()
    base = os.path.basename(path)
    return sorted(f.replace(base, "LOG") for f in os.listdir(os.path.dirname(path))
                  if f.startswith(base))


@pytest.mark.parametrize("compress", [True, False])
def test_json_file_rotation(pair: Pair, compress: bool) -> None:
    name = _name()
    options = (*ROTATED, "--log-opt", f"compress={str(compress).lower()}")
    try:
        pair.same("run", "--name", name, *options, IMAGE, "sh", "-c",
                  "for i in $(seq 1 300); do echo line-$i; done")
        assert _log_files(pair.moord, name) == _log_files(pair.dockerd, name) == [
            "LOG", *(f"LOG.{n}{'.gz' if compress else ''}" for n in (1, 2))]
        # Which line starts the oldest kept file depends on each entry's size, and Go's
        # timestamps drop trailing zeros, so it varies by a few lines between runs on
        # either daemon: both keep the newest lines, in order, about three files' worth.
        kept = [[int(line.removeprefix("line-")) for line in r.stdout.decode().split()]
                for r in pair.both("logs", name)]
        for numbers in kept:
            assert numbers == list(range(numbers[0], 301)), numbers
        assert abs(len(kept[0]) - len(kept[1])) <= 1024 // 60, kept
        pair.same("logs", "--tail", "5", name)
        pair.same("logs", "--tail", "0", name)
        pair.same("inspect", "-f", "{{json .HostConfig.LogConfig}}", name)
    finally:
        pair.both("rm", "-f", name)


def test_one_file_is_started_anew(pair: Pair) -> None:
    name = _name()
    try:
        pair.same("run", "--name", name, "--log-opt", "max-size=1k", IMAGE, "sh", "-c",
                  "for i in $(seq 1 100); do echo line-$i; done")
        # dockerd 20.10 keeps the emptied file's lines as LOG.1 but never reads them.
        assert _log_files(pair.moord, name) == ["LOG"]
        # Where the file was last started anew depends on each entry's size, which varies
        # with Go's zero-trimmed timestamps (CI run: moord kept 92-100, dockerd 93-100):
        # each shows the newest lines, in order, no more than one file holds.
        kept = [[int(line.removeprefix("line-")) for line in r.stdout.decode().split()]
                for r in pair.both("logs", name)]
        for numbers in kept:
            assert numbers and numbers == list(range(numbers[0], 101)), numbers
        assert abs(len(kept[0]) - len(kept[1])) <= 2, kept
        path = pair.moord.docker("inspect", "-f", "{{.LogPath}}", name).stdout.decode().strip()
        with open(path, "rb") as log:
            entries = log.read()
        assert len(entries) <= 1024
        assert [json.loads(entry)["log"] for entry in entries.splitlines()] == [
            f"line-{n}\n" for n in kept[0]]
    finally:
        pair.both("rm", "-f", name)


def test_local_and_none(pair: Pair) -> None:
    local, none = _name(), _name()
    try:
        pair.same("run", "--name", local, "--log-driver", "local", IMAGE, "sh", "-c",
                  "echo out; echo err >&2")
        pair.same("logs", local)
        pair.same("inspect", "-f", "{{.LogPath}} {{json .HostConfig.LogConfig}}", local)
        pair.same("run", "--name", none, "--log-driver", "none", IMAGE, "echo", "shown")
        pair.same("logs", none)
        pair.same("inspect", "-f", "{{.LogPath}} {{json .HostConfig.LogConfig}}", none)
    finally:
        pair.both("rm", "-f", local, none)


@pytest.mark.parametrize("options", [
    ("--log-opt", "max-size=abc"), ("--log-opt", "max-size=0"), ("--log-opt", "max-file=0"),
    ("--log-opt", "max-size=1k", "--log-opt", "max-file=x"),
    ("--log-opt", "compress=true"), ("--log-opt", "max-size=1k", "--log-opt", "compress=yes"),
    ("--log-opt", "foo=bar"), ("--log-driver", "local", "--log-opt", "foo=1"),
    ("--log-driver", "local", "--log-opt", "max-file=1"),
])
def test_bad_options_refused_as_dockerd(pair: Pair, options: tuple[str, ...]) -> None:
    pair.same("run", "--rm", *options, IMAGE, "true", stderr_lines=1)


def test_since_until_across_rotated_files(pair: Pair) -> None:
    # moord alone: the two daemons' times differ. Three bursts a second apart, rotated
    # into several files: --since and --until pick whole bursts.
    name = _name()
    daemon = pair.moord
    try:
        daemon.docker("run", "-d", "--name", name, *ROTATED, "--log-opt", "compress=true",
                      IMAGE, "sh", "-c", "for b in a b c; do for i in $(seq 1 20); do "
                      "echo $b-$i; done; sleep 1; done", check=True)
        daemon.docker("wait", name, check=True)
        stamped = daemon.docker("logs", "-t", "--tail", "1000", name).stdout.decode().split("\n")
        times: dict[str, str] = {}  # each burst's first time
        for line in filter(None, stamped):
            times.setdefault(line.split()[1][0], line.split()[0])
        since = daemon.docker("logs", "--since", times["c"], name).stdout.decode().split()
        assert since == [f"c-{i}" for i in range(1, 21)], since
        assert daemon.docker("logs", "--since", times["c"], "--tail", "2",
                             name).stdout.decode().split() == ["c-19", "c-20"]
        until = daemon.docker("logs", "--until", times["c"], name).stdout.decode().split()
        # Both ends are included, as dockerd's: the first c entry is at `until`.
        assert until[-2:] == ["b-20", "c-1"], until
    finally:
        daemon.docker("rm", "-f", name)


def test_follow_through_rotations(pair: Pair) -> None:
    name = _name()
    daemon = pair.moord
    try:
        daemon.docker("run", "-d", "--name", name, *ROTATED, IMAGE, "sh", "-c",
                      "sleep 0.5; for i in $(seq 1 200); do echo line-$i; done", check=True)
        followed = daemon.docker("logs", "-f", name, timeout=20).stdout.decode().split()
        # What rotation dropped before the follower read it is gone, as with dockerd;
        # what it read is in order and ends with the last line.
        numbers = [int(w.split("-")[1]) for w in followed]
        assert numbers == sorted(numbers) and numbers[-1] == 200, followed
    finally:
        daemon.docker("rm", "-f", name)


def test_daemon_log_defaults(busybox_tar: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="moor-logdefaults-") as base:
        bad = subprocess.run([MOORD, "--data-root", f"{base}/d", "--exec-root", f"{base}/e",
                              "-H", f"unix://{base}/s.sock", "--config-file", os.devnull,
                              "--log-opt", "max-file=0"], capture_output=True, timeout=20)
        assert bad.returncode == 1 and b"max-file cannot be less than 1" in bad.stderr
        daemon = start_daemon(base, "--log-opt", "max-size=1k", "--log-opt", "max-file=2")
        try:
            daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
            daemon.docker("run", "--name", "dd", IMAGE, "sh", "-c",
                          "for i in $(seq 1 100); do echo line-$i; done", check=True)
            shown = daemon.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", "dd")
            assert json.loads(shown.stdout) == {
                "Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
            assert _log_files(daemon, "dd") == ["LOG", "LOG.1"]
            # The daemon's options are for its own driver only.
            daemon.docker("run", "--name", "ll", "--log-driver", "local", IMAGE, "true",
                          check=True)
            shown = daemon.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", "ll")
            assert json.loads(shown.stdout) == {"Type": "local", "Config": {}}
            assert mask(daemon.docker("logs", "--tail", "1", "dd").stdout) == "line-100\n"
            daemon.docker("rm", "-f", "dd", "ll")
        finally:
            stop_daemon(daemon)


# Last in the module: dockerd's answer, asked when the module began, has had its 15 s.
def test_unknown_driver_refused_as_dockerd(pair: Pair) -> None:
    pair.same("run", "--rm", *UNKNOWN_DRIVER, IMAGE, "true", stderr_lines=1)
