"""Healthchecks side by side with dockerd: --health-* flags and an image's HEALTHCHECK,
--no-healthcheck, State.Health's fields and log, the ps status, a probe that hangs
(killed at its timeout), bad settings refused in dockerd's words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from comparekit import Pair, daemon_pair, mask
from enginekit import Daemon, poll, saved_image
from peers import Dockerd, dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
IMAGE = "busybox:latest"
CHECKED = "checked:latest"  # busybox with a HEALTHCHECK in its config
FAST = ("--health-interval", "100ms", "--health-retries", "2")


def _image_with_healthcheck(layer: bytes) -> bytes:
    """A `docker save` archive of busybox whose config has a HEALTHCHECK."""
    return saved_image(CHECKED, layer, {
        "Cmd": ["sleep", "999"], "Healthcheck": {
            "Test": ["CMD-SHELL", "echo from-image"], "Interval": 100_000_000, "Retries": 1}})


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-health-", IMAGE, busybox_tar) as pair:
        archive = _image_with_healthcheck(busybox_tar)
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("load", input=archive, check=True)
        yield pair



def _health(daemon: Daemon | Dockerd, name: str) -> dict | None:
    shown = daemon.docker("inspect", "-f", "{{json .State.Health}}", name)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def _until(pair: Pair, name: str, expected: Callable[[dict], bool],
           timeout: float = 10) -> list[dict]:
    found = []
    for daemon in (pair.moord, pair.dockerd):
        assert poll(lambda d=daemon: expected(_health(d, name) or {}), timeout), \
            f"{type(daemon).__name__}: {_health(daemon, name)}"
        found.append(_health(daemon, name))
    return found


def _view(health: dict) -> dict:
    """The fields that do not depend on timing: status and the last result."""
    last = health["Log"][-1]
    return {"Status": health["Status"], "ExitCode": last["ExitCode"],
            "Output": last["Output"], "Stamps": bool(last["Start"] and last["End"])}


def test_healthy_then_unhealthy(pair: Pair) -> None:
    name = f"h-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("run", "-d", "--name", name, *FAST, "--health-cmd",
                  "cat /tmp/ok 2>/dev/null || { echo missing >&2; exit 3; }", IMAGE,
                  "sh", "-c", "echo fine > /tmp/ok; sleep 999", compare_stdout=False)
        ours, theirs = _until(pair, name, lambda h: h.get("Status") == "healthy")
        assert _view(ours) == _view(theirs) and ours["FailingStreak"] == 0
        assert _view(ours)["Output"] == "fine\n"
        pair.same("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        pair.same("inspect", "-f", "{{.State.Health.Status}}", name)
        pair.same("exec", name, "rm", "/tmp/ok")
        ours, theirs = _until(pair, name, lambda h: h.get("Status") == "unhealthy")
        assert _view(ours) == _view(theirs) == {
            "Status": "unhealthy", "ExitCode": 3, "Output": "missing\n", "Stamps": True}
        assert len(ours["Log"]) <= 5 and ours["FailingStreak"] >= 2
        pair.same("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        # Stopped, the container keeps its last health.
        pair.same("stop", "-t", "0", name)
        pair.same("inspect", "-f", "{{.State.Health.Status}}", name)
    finally:
        pair.both("rm", "-f", name)


def test_starting_and_the_hung_probe(pair: Pair) -> None:
    name = f"h-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("run", "-d", "--name", name, "--health-interval", "200ms",
                  "--health-timeout", "300ms", "--health-retries", "3", "--health-cmd",
                  "sleep 30", IMAGE, "sleep", "999", compare_stdout=False)
        pair.same("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        # Up to the hung probe's `sleep 30` and more: once in a CI run (a loaded machine)
        # dockerd 20.10 timed out two probes and started no third within 10 s.
        ours, theirs = _until(pair, name, lambda h: h.get("Status") == "unhealthy", 45)
        assert _view(ours) == _view(theirs) == {
            "Status": "unhealthy", "ExitCode": -1,
            "Output": "Health check exceeded timeout (300ms)", "Stamps": True}
        # moord kills each hung probe at its timeout: no `sleep 30` piles up.
        shown = pair.moord.docker("exec", name, "ps", "-o", "args")
        assert shown.stdout.decode().count("sleep 30") <= 1, shown.stdout
    finally:
        pair.both("rm", "-f", name)


def test_image_healthcheck_and_no_healthcheck(pair: Pair) -> None:
    inherit, disabled = f"h-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("run", "-d", "--name", inherit, CHECKED, compare_stdout=False)
        pair.same("run", "-d", "--name", disabled, "--no-healthcheck", CHECKED,
                  compare_stdout=False)
        pair.same("inspect", "-f", "{{json .Config.Healthcheck}}", inherit)
        pair.same("inspect", "-f", "{{json .Config.Healthcheck}}", disabled)
        ours, theirs = _until(pair, inherit, lambda h: h.get("Status") == "healthy")
        assert _view(ours) == _view(theirs) and _view(ours)["Output"] == "from-image\n"
        time.sleep(0.3)
        pair.same("inspect", "-f", "{{json .State.Health}}", disabled)
        pair.same("ps", "--filter", f"name={disabled}", "--format", "{{.Status}}")
    finally:
        pair.both("rm", "-f", inherit, disabled)


def test_bad_settings_refused_as_dockerd(pair: Pair) -> None:
    for flag in ("--health-interval", "--health-timeout", "--health-start-period"):
        ours, theirs = pair.both("create", flag, "500us", "--health-cmd", "true", IMAGE,
                                 "true")
        assert ours.returncode == theirs.returncode != 0
        assert mask(ours.stderr) == mask(theirs.stderr), (ours.stderr, theirs.stderr)


def test_moor_cli_sends_what_docker_sends(pair: Pair) -> None:
    # The same flags through `moor` and the docker CLI give the same container.
    moor = os.path.join(os.path.dirname(sys.executable), "moor")
    env = {**os.environ, "DOCKER_HOST": pair.moord.host}
    flags = ("--health-cmd", "true", "--health-interval", "1m30s", "--health-timeout", "2s",
             "--health-retries", "4", "--health-start-period", "500ms",
             "--log-driver", "json-file", "--log-opt", "max-size=1k", "--log-opt",
             "max-file=2", "--restart", "on-failure:3")
    names = [f"h-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        pair.moord.docker("create", "--name", names[0], *flags, IMAGE, "true", check=True)
        made = subprocess.run([moor, "create", "--name", names[1], *flags, IMAGE, "true"],
                              env=env, capture_output=True, timeout=30)
        assert made.returncode == 0, made.stderr
        shown = [pair.moord.docker("inspect", "-f", "{{json .Config.Healthcheck}} "
                                   "{{json .HostConfig.LogConfig}} "
                                   "{{json .HostConfig.RestartPolicy}}", n).stdout
                 for n in names]
        assert shown[0] == shown[1], shown
        refused = subprocess.run([moor, "create", "--no-healthcheck", "--health-cmd", "true",
                                  IMAGE], env=env, capture_output=True, timeout=30)
        docker = pair.moord.docker("create", "--no-healthcheck", "--health-cmd", "true", IMAGE)
        assert refused.returncode == docker.returncode == 125
        assert refused.stderr.splitlines()[0].replace(b"moor:", b"docker:") == \
            docker.stderr.splitlines()[0]
    finally:
        pair.moord.docker("rm", "-f", *names)


def test_ps_filter_by_health(pair: Pair) -> None:
    checked, plain = f"h-{uuid.uuid4().hex[:8]}", f"h-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("run", "-d", "--name", checked, *FAST, "--health-cmd", "true", IMAGE,
                  "sleep", "999", compare_stdout=False)
        pair.same("run", "-d", "--name", plain, IMAGE, "sleep", "999", compare_stdout=False)
        _until(pair, checked, lambda h: h.get("Status") == "healthy")
        for value in ("healthy", "none", "unhealthy", "bogus"):
            pair.same("ps", "--filter", f"health={value}", "--filter", "name=h-",
                      "--format", "{{.Names}}")
    finally:
        pair.both("rm", "-f", checked, plain)
