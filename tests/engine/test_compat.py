"""The same docker CLI commands against moord and a real dockerd: exit codes, output,
error messages and inspect fields must match (IDs, times and paths masked).

Where moord deliberately differs it is said next to the scenario: the default
runtime (moor-runtime), API 1.42+ wording where dockerd 20.10 is older than the
contract, and HTTP 400 where dockerd 20.10 answered a malformed body with a 500.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from comparekit import Pair, daemon_pair, mask
from enginekit import Daemon, unique_name
from peers import Dockerd, dockerd_available
from ptykit import run_in_pty

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
IMAGE = "busybox:latest"


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-compat-", IMAGE, busybox_tar) as pair:
        yield pair




def test_run_rm(pair: Pair) -> None:
    bind = pair.base / "bind"
    bind.mkdir(exist_ok=True)
    (bind / "f").write_text("from the host\n")
    for args in (
        ["echo", "hi"],
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        ["-e", "FOO=bar", IMAGE, "sh", "-c", "echo $FOO"],
        ["-w", "/tmp", IMAGE, "pwd"],
        ["-u", "1000:1000", IMAGE, "id"],
        ["--entrypoint", "echo", IMAGE, "a", "b c"],
        ["-v", f"{bind}:/b:ro", IMAGE, "sh", "-c", "cat /b/f; touch /b/x"],
        ["--tmpfs", "/t", IMAGE, "sh", "-c", "grep -c ' /t tmpfs' /proc/mounts"],
        ["--memory", "64m", IMAGE, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"],
        ["--cpus", "0.5", IMAGE, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"],
        ["--pids-limit", "50", IMAGE, "cat", "/sys/fs/cgroup/pids/pids.max"],
        ["--cap-drop", "NET_RAW", IMAGE, "grep", "Cap", "/proc/self/status"],
        ["--read-only", IMAGE, "touch", "/x"],
        ["--init", IMAGE, "sh", "-c", "cat /proc/1/comm"],
        ["--runtime", "runc", IMAGE, "cat", "/proc/1/cmdline"],
    ):
        full = args if IMAGE in args else [IMAGE, *args]
        pair.same("run", "--rm", *full)
    pair.same("run", "--rm", "-i", IMAGE, "cat", input=b"piped\n")
    pair.same("run", "--rm", IMAGE, "nosuchcommand", compare_stderr=False)
    assert pair.moord.docker("ps", "-aq").stdout == b""


def test_run_tty_and_exec_pty(pair: Pair, names: list[str]) -> None:
    name = unique_name(names, "c")

    def ptys(daemon: Daemon | Dockerd) -> tuple:
        tty, code = run_in_pty(daemon, ["run", "--rm", "-t", IMAGE, "sh", "-c",  # type: ignore[arg-type]
                                        "tty"])
        daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "60", check=True)
        exec_out, exec_code = run_in_pty(daemon, ["exec", "-it", name, "sh", "-c",  # type: ignore[arg-type]
                                                  "read x; echo got $x"], input=b"hello\r")
        return code, tty, exec_code, exec_out.replace(b"\r\n", b"\n")

    outputs = pair.each(ptys)
    assert outputs[0] == outputs[1]
    assert outputs[0][3].endswith(b"got hello\n")


def test_detached_lifecycle(pair: Pair, names: list[str]) -> None:
    state = ["State.Status", "State.Running", "State.Paused", "State.Restarting",
             "State.OOMKilled", "State.Dead", "State.ExitCode", "State.Error", "RestartCount"]
    name = unique_name(names, "c")
    pair.same("run", "-d", "--name", name, IMAGE, "sh", "-c",
              "trap 'echo bye; exit 7' TERM; echo started; while :; do sleep 0.1; done")
    time.sleep(0.5)
    for step in (["pause"], ["unpause"], ["restart", "-t", "1"], ["stop", "-t", "5"],
                 ["start"], ["kill", "-s", "KILL"]):
        pair.same(*step, name)
        ours, theirs = pair.inspect(name, state)
        assert ours == theirs, step
    pair.same("wait", name)
    pair.same("logs", name)
    pair.same("logs", "-f", "--tail", "1", name)
    pair.same("ps", "-a", "--filter", f"name={name}", "--format",
              "{{.Names}} {{.Command}} {{.State}} {{.Status}}")
    pair.same("rm", "-v", name)
    pair.same("wait", name)


def test_inspect_fields(pair: Pair, names: list[str]) -> None:
    name = unique_name(names, "c")
    bind = pair.base / "bind2"
    bind.mkdir(exist_ok=True)
    pair.same("create", "--name", name, "-e", "A=1", "-w", "/tmp", "-u", "1000",
              "--entrypoint", "sh", "-l", "k=v", "-v", f"{bind}:/b:ro", "--tmpfs", "/t:size=1m",
              "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "--cap-drop", "NET_RAW",
              "--read-only", "--init", "--rm", IMAGE, "-c", "sleep 30")
    fields = ["Name", "Path", "Args", "RestartCount", "Driver", "Platform", "State",
              "Config.Cmd", "Config.Entrypoint", "Config.Env", "Config.WorkingDir", "Config.User",
              "Config.Labels", "Config.Image", "Config.Tty", "Config.OpenStdin",
              "Config.StdinOnce", "HostConfig.Memory", "HostConfig.MemorySwap",
              "HostConfig.NanoCpus", "HostConfig.PidsLimit", "HostConfig.CapDrop",
              "HostConfig.ReadonlyRootfs", "HostConfig.Binds", "HostConfig.Tmpfs",
              "HostConfig.Init", "HostConfig.AutoRemove", "HostConfig.ShmSize",
              "HostConfig.IpcMode", "HostConfig.NetworkMode", "HostConfig.LogConfig",
              "HostConfig.RestartPolicy", "Mounts", "GraphDriver.Name", "ExecIDs"]
    ours, theirs = pair.inspect(name, fields)
    assert ours == theirs
    pair.same("start", name)
    ours, theirs = pair.inspect(name, ["State.Status", "State.Running", "Config.Cmd"])
    assert ours == theirs
    pair.same("rm", "-f", name)


def test_errors(pair: Pair, names: list[str]) -> None:
    running, stopped = unique_name(names, "c"), unique_name(names, "c")
    pair.same("run", "-d", "--name", running, IMAGE, "sleep", "60")
    pair.same("create", "--name", stopped, IMAGE, "true")
    bind = str(pair.base)
    for args in (
        ["rm", "nosuch"], ["inspect", "nosuch"], ["logs", "nosuch"], ["stop", "nosuch"],
        ["kill", "nosuch"], ["start", "nosuch"], ["wait", "nosuch"], ["exec", "nosuch", "true"],
        ["pause", "nosuch"], ["restart", "nosuch"], ["attach", "nosuch"],
        ["rename", "nosuch", "x"], ["rename", running, "bad name"],
        ["run", "--name", "a b", IMAGE, "true"], ["run", "--name", running, IMAGE, "true"],
        ["run", "UPPER", "true"], ["run", "bad:ref:x", "true"],
        ["run", "--rm", "-v", f"{bind}:relative", IMAGE, "true"],
        ["run", "--rm", "-v", f"{bind}:/", IMAGE, "true"],
        ["run", "--rm", "-v", f"{bind}:/a:bogus", IMAGE, "true"],
        ["run", "--rm", "--mount", "type=bind,src=/nonexistent,dst=/x", IMAGE, "true"],
        ["run", "--rm", "--mount", "type=tmpfs,src=/x,dst=/x", IMAGE, "true"],
        ["run", "--rm", "--tmpfs", "relative", IMAGE, "true"],
        ["run", "--rm", "-w", "relative", IMAGE, "true"],
        ["run", "--rm", "-u", "nosuch", IMAGE, "true"],
        ["run", "--rm", "--cap-drop", "BOGUS", IMAGE, "true"],
        ["run", "--rm", "--memory", "1k", IMAGE, "true"],
        ["run", "--rm", "--ipc", "bogus", IMAGE, "true"],
        ["run", "--rm", "--stop-signal", "BOGUS", IMAGE, "true"],
        ["rm", running], ["pause", stopped], ["unpause", running], ["unpause", stopped],
        ["kill", stopped], ["kill", "-s", "BOGUS", running], ["exec", stopped, "true"],
        ["ps", "-a", "--filter", "status=bogus"], ["ps", "--filter", "bogus=1"],
    ):
        pair.same(*args)
    # The registry is unreachable here; its wording depends on the resolver.
    pair.same("run", "--rm", "nosuchimage:v1", "true", stderr_lines=1)
    pair.same("pause", running)
    pair.same("pause", running)
    pair.same("unpause", running)


def test_ps(pair: Pair, names: list[str]) -> None:
    first, second, third = unique_name(names, "c"), unique_name(names, "c"), unique_name(names, "c")
    pair.same("run", "--name", first, "-l", "tier=a", IMAGE, "sh", "-c", "exit 2")
    pair.same("run", "-d", "--name", second, "-l", "tier=b", IMAGE, "sleep", "60")
    pair.same("create", "--name", third, IMAGE, "true")
    table = "{{.Names}} {{.Image}} {{.Command}} {{.State}} {{.Labels}}"
    for args in (
        ["-a", "--filter", "status=exited"], ["-a", "--filter", "status=created"],
        ["--filter", "status=running"], ["-a", "--filter", "label=tier=b"],
        ["-a", "--filter", "label=tier"], ["-a", "--filter", f"ancestor={IMAGE}"],
        ["-a", "--filter", f"name={second}"], ["--last", "1"], ["-n", "2"], ["-a"],
        ["-a", "--filter", "exited=2"],
        # several label filters must all hold (docker compose lists a service this way)
        ["-a", "--filter", "label=tier=a", "--filter", "label=tier=b"],
        ["-a", "--filter", "label=tier", "--filter", "label=tier=b"],
    ):
        ours, theirs = pair.both("ps", *args, "--format", table)
        keep = set(names)
        view = [[line for line in r.stdout.decode().splitlines() if line.split()[0] in keep]
                for r in (ours, theirs)]
        assert (ours.returncode, view[0]) == (theirs.returncode, view[1]), args
    pair.same("ps", "-a", "--size", "--filter", f"name={third}", "--format", "{{.Size}}")


def test_attach_and_stdin_once(pair: Pair, names: list[str]) -> None:
    name = unique_name(names, "c")
    pair.same("create", "-i", "--name", name, IMAGE, "sh", "-c", "read x; echo got $x")
    pair.same("start", "-a", "-i", name, input=b"one\n")
    other = unique_name(names, "c")
    pair.same("run", "-d", "-i", "--name", other, IMAGE, "sh", "-c",
              "sleep 0.5; read x; echo got $x")
    # dockerd's CLI may leave before the output arrives once stdin is done: exit codes only.
    attached = pair.same("attach", other, input=b"two\n", compare_stdout=False)
    assert attached == 0
    pair.same("wait", other)
    pair.same("logs", other)
    # logs=1 replays the log before (or without) streaming.
    replays = [_attach_logs(d.socket, other) for d in (pair.moord, pair.dockerd)]
    assert replays[0] == replays[1] == b"\x01\x00\x00\x00\x00\x00\x00\x08got two\n"


def _attach_logs(path: str, name: str) -> bytes:
    conn = _unix_http(path)
    conn.request("POST", f"/v1.41/containers/{name}/attach?logs=1&stream=0&stdout=1&stderr=1")
    return conn.getresponse().read()


def _unix_http(path: str) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    conn.sock = sock
    return conn


def test_save_load_prune(pair: Pair) -> None:
    saved = pair.both("save", IMAGE)
    assert all(r.returncode == 0 for r in saved), [r.stderr for r in saved]
    archives = [r.stdout for r in saved]
    # Each daemon loads the other's archive: a new ID for the same tag.
    loads = [mask(d.docker("load", input=a).stdout)
             for d, a in ((pair.moord, archives[1]), (pair.dockerd, archives[0]))]
    assert loads[0] == loads[1]
    assert loads[0].endswith("Loaded image: busybox:latest\n")
    pair.same("image", "prune", "-f")
    pair.same("image", "inspect", "--format", "{{.RepoTags}} {{.Os}}", IMAGE)


def test_load_on_a_terminal_streams_layer_progress(pair: Pair, tmp_path: Path) -> None:
    # quiet=0 is what the docker CLI asks on a terminal. A layer new to both daemons
    # (nothing is drawn for a layer an engine has).
    (tmp_path / "blob").write_bytes(os.urandom(3 << 19))
    layer = subprocess.run(["tar", "-C", str(tmp_path), "-c", "blob"], capture_output=True,
                           check=True).stdout
    name = f"progress-{uuid.uuid4().hex[:10]}"
    pair.moord.docker("import", "-", f"{name}:1", input=layer, check=True)
    archive = pair.moord.docker("save", f"{name}:1", check=True).stdout
    pair.moord.docker("rmi", f"{name}:1", check=True)
    try:
        streams = pair.each(lambda d: _post_json_lines(d.socket, "/v1.41/images/load?quiet=0",
                                                       archive))
    finally:
        pair.both("rmi", f"{name}:1")
    for messages in streams:
        *bars, loaded = messages
        assert loaded == {"stream": f"Loaded image: {name}:1\n"}, messages
        assert {(m["status"], m["id"]) for m in bars} == {("Loading layer", bars[0]["id"])}
        steps = [m["progressDetail"]["current"] for m in bars]
        assert steps == sorted(steps) and steps[-1] == bars[0]["progressDetail"]["total"]
        assert len(steps) >= 2, messages  # the first read and the end, at least
    # The same layer (its diff ID, short) and size: how often a bar moves may differ.
    shapes = [{(m["status"], m["id"], m["progressDetail"]["total"]) for m in messages[:-1]}
              for messages in streams]
    assert shapes[0] == shapes[1], streams


def _post_json_lines(path: str, url: str, body: bytes) -> list[dict]:
    conn = _unix_http(path)
    conn.request("POST", url, body=body, headers={"Content-Type": "application/x-tar"})
    answer = conn.getresponse()
    assert (answer.status, answer.getheader("Content-Type")) == (200, "application/json")
    return [json.loads(line) for line in answer.read().splitlines() if line.strip()]


ENDPOINT_TYPES = [{"Aliases": 1}, 3, {"IPAMConfig": {"IPv4Address": 7}}, {"Links": "a"},
                  {"IPAMConfig": 2, "Aliases": ["ok"]}]


def test_wrong_types_in_endpoint_settings(pair: Pair) -> None:
    # Go's decoder names the field; dockerd 20.10 answers a create's with a 500 (moord 400).
    network, container = (f"typed-{uuid.uuid4().hex[:10]}" for _ in range(2))
    pair.both("network", "create", network)
    pair.both("create", "--name", container, IMAGE, "true")
    try:
        connect = f"/networks/{network}/connect"
        bodies = [(connect, {"Container": container, "EndpointConfig": endpoint})
                  for endpoint in ENDPOINT_TYPES] + [
            (connect, {"Container": 5}),
            ("/containers/create", {"Image": IMAGE, "NetworkingConfig": 4}),
            ("/containers/create", {"Image": IMAGE, "NetworkingConfig": {"EndpointsConfig": 3}}),
            *(("/containers/create", {"Image": IMAGE, "NetworkingConfig": {
                "EndpointsConfig": {network: endpoint}}}) for endpoint in ENDPOINT_TYPES)]
        for url, body in bodies:
            answers = pair.each(lambda d, url=url, body=body: _post_json(d.socket, url, body))
            created = url == "/containers/create"
            assert answers[0] == (400, answers[1][1]), (body, answers)
            assert answers[1][0] == (500 if created else 400), (body, answers)
    finally:
        pair.both("rm", container)
        pair.both("network", "rm", network)


def _post_json(path: str, url: str, body: object) -> tuple[int, str]:
    conn = _unix_http(path)
    conn.request("POST", "/v1.41" + url, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())["message"]


def test_wrong_types_in_network_create(pair: Pair) -> None:
    name = f"typed-{uuid.uuid4().hex[:10]}"
    for body in ({"IPAM": {"Config": 1.5}}, {"IPAM": 3}, {"Name": 5}, {"ConfigFrom": 3},
                 {"Options": 3}, {"Labels": {"a": 1}}, {"IPAM": {"Config": [3]}},
                 {"IPAM": {"Config": [{"Subnet": 5}]}}, {"IPAM": {"Driver": 1}},
                 {"Internal": "yes"}, {"IPAM": {"Config": [{"AuxiliaryAddresses": {"a": 1}}]}},
                 {"ConfigFrom": {"Network": 1}}, {"Scope": 1}):
        answers = pair.each(lambda d, body=body: _post_json(
            d.socket, "/networks/create", {"Name": name, **body}))
        assert answers[0] == answers[1] and answers[0][0] == 400, (body, answers)
