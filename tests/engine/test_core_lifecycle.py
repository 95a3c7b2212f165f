"""One container's life as Docker lives it (issue 9): kill and stop return once the
container is dead, rm refuses a running container, a restart policy is honoured or refused,
`--cgroupns private`, and `ps` order and before/since filters for containers made within
the same second.

Every scenario runs on moord and on the reference dockerd (the `engine` fixture): the
dockerd run proves the expectation is Docker's.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid

from enginekit import Engine

IMAGE = "busybox:latest"
STATE = "{{.State.ExitCode}} {{.State.Running}} {{.State.Status}}"


def _name() -> str:
    return f"core-{uuid.uuid4().hex[:10]}"


def _state(core: Engine, name: str) -> str:
    return core.docker("inspect", "-f", STATE, name).stdout.decode().strip()


def test_kill_returns_once_the_container_is_dead(core: Engine) -> None:
    # dockerd answers the kill once the container has exited: inspect right after it
    # shows the SIGKILL's 137, and an `rm -f` right after it removes the container.
    name = _name()
    core.new("run", "-d", "--name", name, IMAGE, "sleep", "999")
    killed = core.docker("kill", name)
    assert (killed.returncode, killed.stdout) == (0, f"{name}\n".encode()), killed.stderr
    assert _state(core, name) == "137 false exited"
    removed = core.docker("rm", "-f", name)
    assert (removed.returncode, removed.stdout) == (0, f"{name}\n".encode()), removed.stderr
    # The same through the API, where the next request follows the kill's answer at once.
    api = core.api()
    for attempt in range(5):
        container_id = core.new("run", "-d", IMAGE, "sleep", "999")
        api.kill(container_id)
        if attempt % 2:
            api.remove_container(container_id, force=True)
            assert api.containers(all=True, filters={"id": container_id}) == []
        else:
            state = api.inspect_container(container_id)["State"]
            assert (state["ExitCode"], state["Running"], state["Status"]) == (137, False, "exited")
    assert core.docker("ps", "-aq", "--filter", f"name=^{name}$").stdout == b""


def test_stop_kills_after_the_grace_period(core: Engine) -> None:
    # `sleep` as pid 1 without --init ignores SIGTERM: stop sends SIGKILL after -t seconds
    # and returns once the container is dead.
    name = _name()
    core.new("run", "-d", "--name", name, IMAGE, "sleep", "999")
    began = time.monotonic()
    stopped = core.docker("stop", "-t", "1", name)
    took = time.monotonic() - began
    assert (stopped.returncode, stopped.stdout) == (0, f"{name}\n".encode()), stopped.stderr
    assert _state(core, name) == "137 false exited"
    assert 0.9 <= took < 10, took
    removed = core.docker("rm", name)
    assert removed.returncode == 0, removed.stderr


def test_rm_refuses_a_running_container(core: Engine) -> None:
    name = _name()
    container_id = core.new("run", "-d", "--name", name, IMAGE, "sleep", "999")
    refused = core.docker("rm", name)
    assert refused.returncode == 1
    assert refused.stderr.decode() == (
        f"Error response from daemon: You cannot remove a running container {container_id}."
        " Stop the container before attempting removal or force remove\n")
    assert _state(core, name) == "0 true running"


def test_restart_policy_always(core: Engine) -> None:
    # As dockerd: the policy restarts the container when it exits, and `rm` without -f
    # refuses the running container.
    # The command fails once and then stays up: the second run finds the file the first
    # left in the container's writable layer.
    api = core.api()
    name = _name()
    created = api.create_container(
        IMAGE, ["sh", "-c", "test -e /ran || { touch /ran; exit 3; }; exec sleep 999"],
        name=name, host_config=api.create_host_config(restart_policy={"Name": "always"}))
    core.ids.add(created["Id"])
    api.start(name)
    deadline = time.monotonic() + 10
    while True:
        info = api.inspect_container(name)
        # dockerd shows Running during the back-off before a restart too: Status tells.
        if info["RestartCount"] >= 1 and info["State"]["Status"] == "running":
            break
        assert time.monotonic() < deadline, f"not restarted: {info['State']}"
        time.sleep(0.05)
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "always"
    refused = core.docker("rm", name)
    # Between two runs the container waits out its back-off: "restarting", as on dockerd.
    assert refused.returncode == 1 and re.search(
        rb"You cannot remove a (running|restarting) container", refused.stderr)
    # A stop by the user is final: the policy does not bring the container back.
    assert core.docker("stop", "-t", "1", name).returncode == 0
    assert _state(core, name).split()[1:] == ["false", "exited"]
    assert core.docker("rm", name).returncode == 0


def test_cgroupns_private(core: Engine) -> None:
    shown = core.docker("run", "--rm", "--cgroupns", "private", IMAGE, "cat", "/proc/self/cgroup")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert lines and all(line.endswith(":/") for line in lines), lines
    name = _name()
    core.new("create", "--name", name, "--cgroupns", "private", IMAGE, "true")
    mode = core.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", name)
    assert mode.stdout == b"private\n", mode.stderr


def _created(stamp: str) -> int:
    """An RFC 3339 time with up to nanoseconds, as integer nanoseconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    return int(seconds) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


def test_order_within_one_second(core: Engine) -> None:
    # A dozen creates in a row land within the same second: `ps` lists them newest first
    # and before=/since= cut the list exactly at the named container.
    api = core.api()
    label = uuid.uuid4().hex
    names = [_name() for _ in range(12)]
    for name in names:
        core.ids.add(api.create_container(IMAGE, ["true"], name=name,
                                          labels={"core-order": label})["Id"])
    mine = {"label": f"core-order={label}"}

    def listed(**more: str) -> list[str]:
        return [c["Names"][0].lstrip("/") for c in api.containers(all=True,
                                                                  filters={**mine, **more})]

    assert listed() == names[::-1]
    for i, name in enumerate(names):
        assert listed(before=name) == names[:i][::-1], f"before={name} (#{i})"
        assert listed(since=name) == names[i + 1:][::-1], f"since={name} (#{i})"
    shown = core.docker("ps", "-a", "--filter", f"label=core-order={label}", "--format",
                        "{{.Names}}")
    assert shown.stdout.decode().split() == names[::-1]
    times = [_created(api.inspect_container(name)["Created"]) for name in names]
    assert times == sorted(times) and len(set(times)) == len(times), times


def test_restart_keeps_an_auto_remove_container(core: Engine) -> None:
    # dockerd lifts AutoRemove for the stop a restart makes; a later exit removes it.
    name = _name()
    core.new("run", "-d", "--rm", "--name", name, IMAGE, "sleep", "999")
    restarted = core.docker("restart", "-t", "0", name)
    assert (restarted.returncode, restarted.stdout) == (0, f"{name}\n".encode()), \
        restarted.stderr
    assert _state(core, name) == "0 true running"
    assert core.docker("stop", "-t", "0", name).returncode == 0
    deadline = time.monotonic() + 10
    while core.docker("ps", "-aq", "--filter", f"name=^{name}$").stdout and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert core.docker("ps", "-aq", "--filter", f"name=^{name}$").stdout == b""
