"""The engine under concurrent clients and slow peers (issue 9): `rm -f` at any moment of a
start, stop or exit; many SDK clients on the same and on different containers; a container
that never reads its stdin and an attach client that never reads its output.

No request may end in a 500 or a dropped connection (404 and 409 are the answers races
legitimately get), `stop` and `kill` must not hang, and nothing may be left behind: no
container, shim, mount or cgroup. Every scenario runs on moord and on the reference
dockerd (the `engine` fixture), which shows the expectations are Docker's.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable

import docker.errors
import pytest
import requests.exceptions
from enginekit import Engine

IMAGE = "busybox:latest"
# How far into the other operation the `rm -f` lands, in seconds (cycled, so the run is
# the same every time).
DELAYS = (0.0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.04, 0.08)


class Failures:
    """Every answer a client must never get, collected from all threads."""

    def __init__(self, engine: Engine) -> None:
        self.lines: list[str] = []
        self.calls = 0
        self.lock = threading.Lock()
        # Two 500s of the reference's own, forgiven to it alone (moord must not answer
        # them): dockerd 20.10 answers an exec on a container whose removal is under way
        # with a 500 ("is not running: Removal In Progress"; later dockerd answers 409),
        # and an `rm -f` racing another client's operations sometimes fails with "unable
        # to remove filesystem … directory not empty".
        self.forgiven = ("is not running", "unable to remove filesystem") \
            if engine.name == "dockerd" else ()

    def call(self, what: str, operation: Callable[[], object]) -> object:
        with self.lock:
            self.calls += 1
        try:
            return operation()
        except docker.errors.APIError as err:
            if (err.status_code is None or err.status_code >= 500) \
                    and not any(words in str(err.explanation) for words in self.forgiven):
                self.add(f"{what}: {err.status_code} {err.explanation}")
            return None
        except (requests.exceptions.RequestException, OSError) as err:
            self.add(f"{what}: {type(err).__name__}: {err}")
            return None

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)


def _gone(api: docker.APIClient, container_id: str) -> bool:
    try:
        api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


def _race_removal(core: Engine, api: docker.APIClient, failures: Failures, phase: str,
                  delay: float) -> None:
    """One round: `rm -f` lands `delay` seconds into a start, a stop or a start of a
    container that exits at once, made by another client."""
    command = ["sh", "-c", "exit 3"] if phase == "exit" else ["sleep", "999"]
    container_id = api.create_container(IMAGE, command)["Id"]
    core.ids.add(container_id)
    if phase == "stop":
        api.start(container_id)
        other = functools.partial(api.stop, container_id, timeout=0)
    else:
        other = functools.partial(api.start, container_id)
    ready = threading.Barrier(2, timeout=10)

    def race() -> None:
        ready.wait()
        failures.call(f"{phase} racing rm -f", other)

    thread = threading.Thread(target=race)
    thread.start()
    ready.wait()
    time.sleep(delay)  # where in the other operation the removal lands, not a wait
    remove = functools.partial(api.remove_container, container_id, force=True)
    failures.call(f"rm -f during {phase} (+{delay}s)", remove)
    thread.join(timeout=30)
    assert not thread.is_alive(), f"{phase} hung while racing rm -f"
    if not _gone(api, container_id):
        # A legitimate conflict (a removal already in progress) ends with the container
        # gone all the same once the other operation is over.
        failures.call("rm -f after the race", remove)
    if not _gone(api, container_id):
        failures.add(f"rm -f during {phase} (+{delay}s) left {container_id[:12]}")


def test_force_removal_during_start_stop_and_exit(core: Engine) -> None:
    api = core.api()
    failures = Failures(core)
    phases = ("start", "stop", "exit")
    deadline = time.monotonic() + 8
    for round_number, delay in zip(range(40), itertools.cycle(DELAYS)):
        if time.monotonic() > deadline:
            break
        _race_removal(core, api, failures, phases[round_number % len(phases)], delay)
    assert not failures.lines, "\n".join(failures.lines)
    assert api.containers(all=True, filters={"id": sorted(core.ids)}) == []
    left = core.residue()
    assert not left, "after the races:\n  " + "\n  ".join(left)


def test_many_clients_same_and_different_containers(core: Engine) -> None:
    failures = Failures(core)
    shared = [f"core-shared-{i}" for i in range(3)]
    stop_at = time.monotonic() + 8
    made_lock = threading.Lock()
    actions = ("create", "start", "exec", "attach", "logs", "rm")

    def create(api: docker.APIClient, name: str) -> None:
        created = api.create_container(IMAGE, ["sh", "-c", "echo up; sleep 5"], name=name)
        with made_lock:
            core.ids.add(created["Id"])

    def exec_in(api: docker.APIClient, name: str) -> None:
        exec_id = api.exec_create(name, ["echo", "in"])["Id"]
        api.exec_start(exec_id)

    def client(number: int) -> None:
        api = core.api(timeout=20)
        own = f"core-own-{number}"
        steps = {
            "create": create,
            "start": lambda api, name: api.start(name),
            "exec": exec_in,
            "attach": lambda api, name: api.attach(name, stream=False, logs=True),
            "logs": lambda api, name: api.logs(name),
            "rm": lambda api, name: api.remove_container(name, force=True),
        }
        for step in itertools.count(number):
            if time.monotonic() > stop_at:
                return
            # Odd clients work on their own container, even ones on the shared three.
            name = own if number % 2 else shared[step % len(shared)]
            action = actions[(step * (number + 1)) % len(actions)]
            failures.call(f"client {number}: {action} {name}",
                          lambda a=action, n=name: steps[a](api, n))  # type: ignore[misc]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not failures.lines, f"{len(failures.lines)} failures in {failures.calls} requests:\n" \
        + "\n".join(failures.lines[:40])
    assert failures.calls >= 100, f"only {failures.calls} requests in 8 s: the clients stalled"
    api = core.api()
    assert api.ping()
    assert core.docker("ps", "-a").returncode == 0
    # Every name the clients used, and anything they made under it, goes; nothing remains.
    left = core.clean()
    assert not left, "after the clients:\n  " + "\n  ".join(left)


def _pending(sock: socket.socket) -> int:
    """Bytes received and not yet read by the client."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


# A hang is over a minute (dockerd's, measured); a stop on a machine loaded to 10-15x its
# cores has taken over 5 s.
def _bounded(core: Engine, *args: str, limit: float = 20) -> tuple[int | None, float]:
    """`docker args…`, its exit code (None if it hung past `limit`) and how long it took."""
    began = time.monotonic()
    try:
        code: int | None = core.docker(*args, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - began


def _raw(attached: object) -> socket.socket:
    return getattr(attached, "_sock", attached)  # type: ignore[return-value]


def test_stdin_nobody_reads(core: Engine) -> None:
    # `docker run -di … sleep 999`: a client pours into the attach stream until the
    # engine pushes back (or 16 MiB went in); the container must still stop and die.
    api = core.api()
    for verb in ("stop", "kill"):
        container_id = api.create_container(IMAGE, ["sleep", "999"], stdin_open=True)["Id"]
        core.ids.add(container_id)
        api.start(container_id)
        sock = _raw(api.attach_socket(container_id, params={"stdin": 1, "stream": 1}))
        sock.settimeout(0.5)
        blocked = threading.Event()

        def pour(sock: socket.socket = sock, blocked: threading.Event = blocked) -> None:
            chunk = b"x" * 65536
            try:
                for _ in range(256):
                    sock.sendall(chunk)
            except OSError:
                pass  # timed out: the engine stopped taking input (or dropped the client)
            blocked.set()

        pouring = threading.Thread(target=pour)
        pouring.start()
        assert blocked.wait(timeout=20), "the pour never ended"
        args = ("stop", "-t", "1", container_id) if verb == "stop" else ("kill", container_id)
        code, took = _bounded(core, *args)
        assert code == 0, f"docker {verb} with a full stdin: hung {took:.1f}s"
        state = api.inspect_container(container_id)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 137)
        sock.close()
        pouring.join(timeout=10)


def test_attach_client_that_never_reads(core: Engine) -> None:
    # `yes` floods stdout and the attached client reads nothing: the engine must not
    # let that client slow the container's stop and kill down to its pace.
    if core.name == "dockerd":
        pytest.skip("dockerd 20.10 hangs here itself: its stop and kill wait for the stalled "
                    "client (measured: over 60 s); issue 9 asks moord for better")
    api = core.api()
    for verb in ("stop", "kill"):
        container_id = api.create_container(IMAGE, ["yes"])["Id"]
        core.ids.add(container_id)
        sock = _raw(api.attach_socket(container_id, params={"stdout": 1, "stderr": 1,
                                                            "stream": 1}))
        api.start(container_id)
        # The output backs up as far as it goes: the client's queue stops growing.
        deadline = time.monotonic() + 10
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = _pending(sock)
            if now != last:
                last, still_since = now, time.monotonic()
            elif now > 0 and time.monotonic() - still_since > 0.3:
                break
            time.sleep(0.02)
        assert last > 0, "no output reached the attach client"
        args = ("stop", "-t", "1", container_id) if verb == "stop" else ("kill", container_id)
        code, took = _bounded(core, *args)
        assert code == 0, f"docker {verb} with a stalled attach client: hung {took:.1f}s"
        state = api.inspect_container(container_id)["State"]
        # `yes` dies of SIGTERM at stop (143) or of SIGKILL (137), or of a broken pipe
        # if the engine dropped the stalled client.
        assert state["Status"] == "exited" and state["ExitCode"] in (137, 143, 141), state
        sock.close()
