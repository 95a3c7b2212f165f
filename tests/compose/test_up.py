"""`moor compose` on an engine: up, ps, logs, exec, run, down, recreate, scale, conditions;
against the reference dockerd (bridge networking in its own namespace) and moord (the parts
moord has: containers without networks until the networks/volumes work lands)."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

from composekit import ComposeEngine
from registrykit import free_port, start_moor, write_htpasswd

PREFIX = "com.docker.compose."


# The usual service: a sleeper that stops at once. Services take it with `<<: *sleeper`.
SLEEPER = """
x-sleeper: &sleeper
  image: busybox:latest
  command: sleep 600
  stop_signal: SIGKILL
"""


def project(tmp_path: Path, engine: ComposeEngine, text: str, name: str = "proj") -> Path:
    """A project directory with `text` as its compose.yaml (after SLEEPER's anchor)."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "compose.yaml").write_text(SLEEPER + textwrap.dedent(text))
    return folder


def ok(result: object) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def inspect(engine: ComposeEngine, *names: str) -> list[dict]:
    result = engine.docker("inspect", *names, check=True)
    found: list[dict] = json.loads(result.stdout)
    return found


SIMPLE = """
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo hello from $$WHO; exec sleep 600"]
    environment:
      WHO: ${WHO:-web}
    stop_signal: SIGKILL
    depends_on: [worker]
  worker:
    image: busybox:latest
    command: sh -c 'echo worker ready; exec sleep 600'
    stop_signal: SIGKILL
"""


def test_up_ps_logs_exec_run_down(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, SIMPLE)
    ok(engine.compose(folder, "up", "-d"))
    try:
        ids = ok(engine.compose(folder, "ps", "-q")).split()
        assert len(ids) == 2
        web, worker = inspect(engine, "proj-web-1", "proj-worker-1")
        labels = web["Config"]["Labels"]
        assert labels[PREFIX + "project"] == "proj"
        assert labels[PREFIX + "service"] == "web"
        assert labels[PREFIX + "container-number"] == "1"
        assert labels[PREFIX + "oneoff"] == "False"
        assert labels[PREFIX + "project.working_dir"] == str(folder)
        assert labels[PREFIX + "depends_on"] == "worker:service_started:false"
        assert len(labels[PREFIX + "config-hash"]) == 64
        assert web["State"]["Running"] and worker["State"]["Running"]
        # dependency order: the worker started first
        assert worker["State"]["StartedAt"] <= web["State"]["StartedAt"]
        table = ok(engine.compose(folder, "ps")).splitlines()
        assert table[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED",
                                    "STATUS", "PORTS"]
        assert [line.split()[0] for line in table[1:]] == ["proj-web-1", "proj-worker-1"]
        assert ok(engine.compose(folder, "ps", "--services")).split() == ["web", "worker"]
        deadline = time.monotonic() + 10
        while "hello" not in (logs := ok(engine.compose(folder, "logs"))) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "proj-web-1     | hello from web" in logs.splitlines()
        assert "proj-worker-1  | worker ready" in logs.splitlines()
        assert ok(engine.compose(folder, "logs", "worker")).splitlines() == [
            "proj-worker-1  | worker ready"]
        result = engine.compose(folder, "exec", "-T", "web", "sh", "-c",
                                "echo out; echo err >&2; exit 3")
        assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
        result = engine.compose(folder, "exec", "-T", "web", "cat", input="piped\n")
        assert (result.returncode, result.stdout) == (0, "piped\n")
        result = engine.compose(folder, "run", "--rm", "-T", "--no-deps", "worker", "sh", "-c",
                                "echo one-off; exit 4")
        assert (result.returncode, result.stdout) == (4, "one-off\n")
        assert sorted(ok(engine.compose(folder, "ps", "-aq")).split()) == sorted(ids)
        # nothing changed: nothing recreated
        ok(engine.compose(folder, "up", "-d"))
        assert sorted(ok(engine.compose(folder, "ps", "-q")).split()) == sorted(ids)
        # a changed service is recreated, the other kept
        (folder / ".env").write_text("WHO=changed\n")
        ok(engine.compose(folder, "up", "-d"))
        after = inspect(engine, "proj-web-1", "proj-worker-1")
        assert after[0]["Id"] != web["Id"] and after[1]["Id"] == worker["Id"]
        ok(engine.compose(folder, "up", "-d", "--force-recreate", "worker"))
        assert inspect(engine, "proj-worker-1")[0]["Id"] != worker["Id"]
        ok(engine.compose(folder, "stop"))
        assert ok(engine.compose(folder, "ps", "-q")) == ""
        ok(engine.compose(folder, "start"))
        assert len(ok(engine.compose(folder, "ps", "-q")).split()) == 2
        ok(engine.compose(folder, "pause", "web"))
        assert inspect(engine, "proj-web-1")[0]["State"]["Paused"]
        ok(engine.compose(folder, "unpause", "web"))
        assert "proj" in ok(engine.compose(folder, "ls"))
    finally:
        down = engine.compose(folder, "down")
    ok(down)
    assert engine.docker("ps", "-aq").stdout == b""
    if engine.name == "dockerd":
        assert b"proj_default" not in engine.docker("network", "ls").stdout


def test_top(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "up", "-d"))
        shown = ok(engine.compose(folder, "top", "web"))
        assert shown.splitlines()[0] == "proj-web-1"
        assert "sleep 600" in shown
    finally:
        ok(engine.compose(folder, "down"))


def test_scale_and_orphans(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "up", "-d", "--scale", "worker=3"))
        names = sorted(c["Name"] for c in inspect(
            engine, *ok(engine.compose(folder, "ps", "-q", "worker")).split()))
        assert names == ["/proj-worker-1", "/proj-worker-2", "/proj-worker-3"]
        ok(engine.compose(folder, "up", "-d", "--scale", "worker=1"))
        assert len(ok(engine.compose(folder, "ps", "-q", "worker")).split()) == 1
        text = (folder / "compose.yaml").read_text()
        (folder / "compose.yaml").write_text(text.replace("    depends_on: [worker]\n", "")
                                             .split("  worker:")[0])
        result = engine.compose(folder, "up", "-d")
        assert "Found orphan containers (worker)" in result.stderr
        ok(engine.compose(folder, "up", "-d", "--remove-orphans"))
        assert engine.docker("ps", "-aq", "--filter", "name=proj-worker").stdout == b""
    finally:
        ok(engine.compose(folder, "down", "--remove-orphans"))
    assert engine.docker("ps", "-aq").stdout == b""


def test_abort_on_container_exit_and_exit_code_from(engine: ComposeEngine,
                                                    tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          job:
            image: busybox:latest
            command: sh -c 'echo job done; exit 3'
          server:
            <<: *sleeper
        """)
    try:
        result = engine.compose(folder, "up", "--exit-code-from", "job", timeout=60)
        assert result.returncode == 3, result.stderr
        assert "proj-job-1     | job done" in result.stdout.splitlines()
        assert "Aborting on container exit..." in result.stdout
        assert ok(engine.compose(folder, "ps", "-q")) == ""
    finally:
        ok(engine.compose(folder, "down"))


def test_completed_successfully_condition(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          migrate:
            image: busybox:latest
            command: sh -c 'sleep 1; echo migrated'
          app:
            <<: *sleeper
            depends_on:
              migrate:
                condition: service_completed_successfully
        """)
    try:
        ok(engine.compose(folder, "up", "-d"))
        migrate, app = inspect(engine, "proj-migrate-1", "proj-app-1")
        assert migrate["State"]["ExitCode"] == 0
        assert migrate["State"]["FinishedAt"] <= app["State"]["StartedAt"]
    finally:
        ok(engine.compose(folder, "down"))


def test_healthy_condition_and_wait(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          db:
            image: busybox:latest
            command: sh -c 'sleep 1; touch /tmp/ready; exec sleep 600'
            stop_signal: SIGKILL
            healthcheck:
              test: ["CMD", "test", "-f", "/tmp/ready"]
              interval: 500ms
              retries: 40
          web:
            <<: *sleeper
            depends_on:
              db: {condition: service_healthy}
        """)
    try:
        ok(engine.compose(folder, "up", "-d", "--wait"))
        db, web = inspect(engine, "proj-db-1", "proj-web-1")
        assert db["State"]["Health"]["Status"] == "healthy"
        healthy_at = min(entry["End"] for entry in db["State"]["Health"]["Log"]
                         if entry["ExitCode"] == 0)
        assert healthy_at <= web["State"]["StartedAt"]
    finally:
        ok(engine.compose(folder, "down"))


def test_named_volume_survives_down_and_down_v_removes_it(
        engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          store:
            image: busybox:latest
            command: sh -c 'date >> /data/runs; exec sleep 600'
            stop_signal: SIGKILL
            volumes: [data:/data]
        volumes:
          data:
        """)
    try:
        ok(engine.compose(folder, "up", "-d"))
        volume = json.loads(engine.docker("volume", "inspect", "proj_data", check=True).stdout)
        assert volume[0]["Labels"][PREFIX + "volume"] == "data"
        ok(engine.compose(folder, "down"))
        ok(engine.compose(folder, "up", "-d"))
        runs = ok(engine.compose(folder, "exec", "-T", "store", "cat", "/data/runs"))
        assert len(runs.splitlines()) == 2
    finally:
        ok(engine.compose(folder, "down", "-v"))
    assert engine.docker("volume", "inspect", "proj_data").returncode == 1


def test_docker_compose_and_moor_compose_see_each_others_projects(
        engine: ComposeEngine, tmp_path: Path) -> None:
    """Debian's docker-compose 1.29 on the same engine: the same containers, the same logs."""
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "up", "-d"))
        ours = sorted(ok(engine.compose(folder, "ps", "-q")).split())
        assert sorted(ok(engine.docker_compose(folder, "ps", "-q")).split()) == ours
        time.sleep(0.5)
        theirs = ok(engine.docker_compose(folder, "logs", "--no-color", "worker"))
        mine = ok(engine.compose(folder, "logs", "--no-color", "worker"))
        assert [line.split("|", 1)[1] for line in theirs.splitlines() if "|" in line] == \
            [line.split("|", 1)[1] for line in mine.splitlines()]
        result = engine.docker_compose(folder, "exec", "-T", "web", "echo", "from 1.29")
        assert ok(result) == "from 1.29\n"
        ok(engine.docker_compose(folder, "down"))
        assert ok(engine.compose(folder, "ps", "-aq")) == ""
        # and the other way round
        ok(engine.docker_compose(folder, "up", "-d"))
        theirs_ids = sorted(ok(engine.docker_compose(folder, "ps", "-q")).split())
        assert sorted(ok(engine.compose(folder, "ps", "-q")).split()) == theirs_ids
    finally:
        ok(engine.compose(folder, "down"))
    assert engine.docker("ps", "-aq").stdout == b""
    assert b"proj_default" not in engine.docker("network", "ls").stdout


def test_docker_compose_recreates_and_scales_our_project(engine: ComposeEngine,
                                                         tmp_path: Path) -> None:
    """1.29 recreates what moor compose made (its config hash is not ours), under its own
    names, reading the image's ContainerConfig; moor compose sees them all."""
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "up", "-d"))
        ok(engine.docker_compose(folder, "up", "-d", "--scale", "worker=2"))
        assert len(ok(engine.compose(folder, "ps", "-q", "worker")).split()) == 2
        assert len(ok(engine.compose(folder, "ps", "-q", "web")).split()) == 1
    finally:
        ok(engine.compose(folder, "down"))
    assert engine.docker("ps", "-aq").stdout == b""


def test_docker_compose_recreate_keeps_anonymous_volumes_scale_and_down_v(
        engine: ComposeEngine, tmp_path: Path) -> None:
    """docker-compose 1.29 alone, as it negotiates (the engine's newest API): a changed
    service is recreated with its image's VOLUME carried over (from image inspect's
    ContainerConfig), `scale` adds replicas, `down -v` leaves no container."""
    folder = project(tmp_path, engine, """
        services:
          db:
            build: ./db
            environment: {GENERATION: "${GENERATION:-1}"}
            stop_signal: SIGKILL
          worker:
            <<: *sleeper
        """)
    (folder / "db").mkdir()
    (folder / "db" / "Dockerfile").write_text(
        "FROM busybox:latest\nVOLUME /data\nCMD [\"sleep\", \"600\"]\n")
    volume = ""
    try:
        ok(engine.docker_compose(folder, "up", "-d"))
        first = inspect(engine, "proj_db_1")[0]
        volume = first["Mounts"][0]["Name"]
        (folder / ".env").write_text("GENERATION=2\n")
        recreated = engine.docker_compose(folder, "up", "-d")
        ok(recreated)
        assert "Recreating proj_db_1" in recreated.stderr
        second = inspect(engine, "proj_db_1")[0]
        assert second["Id"] != first["Id"]
        assert "GENERATION=2" in second["Config"]["Env"]
        assert [m["Name"] for m in second["Mounts"]] == [volume]
        ok(engine.docker_compose(folder, "scale", "worker=3"))
        running = engine.docker("ps", "-q", "--filter", "label=com.docker.compose.service=worker")
        assert len(running.stdout.split()) == 3
        ok(engine.docker_compose(folder, "down", "-v"))
        assert engine.docker("ps", "-aq").stdout == b""
        # 1.29 hands the volume to the new container by name, so that it is no longer the
        # container's anonymous volume and `down -v` leaves it, on dockerd as here.
        assert engine.docker("volume", "inspect", volume).returncode == 0
    finally:
        ok(engine.compose(folder, "down", "-v"))
        if volume:
            engine.docker("volume", "rm", volume)


def test_docker_compose_run_rm_on_a_network(engine: ComposeEngine, tmp_path: Path) -> None:
    """docker-compose 1.29's `run` links the one-off container to the service's
    dependencies (HostConfig.Links), on the project's network."""
    folder = project(tmp_path, engine, SIMPLE)
    try:
        for service in ("web", "worker"):
            result = engine.docker_compose(folder, "run", "--rm", "-T", service, "echo", "run")
            assert ok(result).splitlines()[-1:] == ["run"]
    finally:
        ok(engine.compose(folder, "down"))
    assert engine.docker("ps", "-aq").stdout == b""


def test_build_and_up_with_build(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          app:
            build:
              context: ./app
              args: {GREETING: hi}
            command: sleep 600
            stop_signal: SIGKILL
          inline:
            image: proj-inline:v1
            build:
              context: .
              dockerfile_inline: |
                FROM busybox:latest
                RUN echo inline > /made
            command: sleep 600
            stop_signal: SIGKILL
        """)
    (folder / "app").mkdir()
    (folder / "app" / "Dockerfile").write_text(
        "FROM busybox:latest\nARG GREETING\nCOPY kept.txt /\nRUN echo $GREETING > /greeting\n")
    (folder / "app" / "kept.txt").write_text("kept\n")
    (folder / "app" / "secret.txt").write_text("no\n")
    (folder / "app" / ".dockerignore").write_text("secret.txt\n")
    try:
        ok(engine.compose(folder, "build"))
        assert engine.docker("image", "inspect", "proj-app").returncode == 0
        ok(engine.compose(folder, "up", "-d"))
        assert ok(engine.compose(folder, "exec", "-T", "app", "cat", "/greeting",
                                 "/kept.txt")) == "hi\nkept\n"
        assert ok(engine.compose(folder, "exec", "-T", "inline", "cat", "/made")) == "inline\n"
        first = inspect(engine, "proj-app-1")[0]["Id"]
        (folder / "app" / "kept.txt").write_text("changed\n")
        ok(engine.compose(folder, "up", "-d", "--build"))
        assert inspect(engine, "proj-app-1")[0]["Id"] != first
        assert ok(engine.compose(folder, "exec", "-T", "app", "cat", "/kept.txt")) == \
            "changed\n"
        (folder / "app" / "Dockerfile").write_text("FROM busybox:latest\nRUN exit 7\n")
        result = engine.compose(folder, "build", "app")
        assert result.returncode == 1
        assert "Service 'app' failed to build : The command '/bin/sh -c exit 7' returned a " \
            "non-zero code: 7" in result.stderr
    finally:
        ok(engine.compose(folder, "down", "--rmi", "all"))
    assert engine.docker("image", "inspect", "proj-app").returncode == 1


def test_exec_and_run_on_a_terminal(engine: ComposeEngine, tmp_path: Path) -> None:
    from composekit import MOOR
    from ptykit import run_in_pty

    folder = project(tmp_path, engine, SIMPLE)
    try:
        # Compose v2's progress block on a terminal: redrawn in place, a line a resource
        shown, code = run_in_pty(engine.daemon, [  # type: ignore[arg-type]
            "-H", engine.host, "compose", "up", "-d", "worker"], program=MOOR, cwd=str(folder))
        assert code == 0
        last = shown.decode().rsplit("[+] Running", 1)[1].replace("\x1b[K", "").splitlines()
        assert last[0] == f" {len(last) - 1}/{len(last) - 1}"
        assert any(line.startswith(" ✔ Container proj-worker-1  Started ")
                   and line.endswith("s") for line in last)
        assert "\x1b[" in shown.decode().split("[+] Running", 2)[2]  # moved up, redrawn
        shown, code = run_in_pty(engine.daemon, [  # type: ignore[arg-type]
            "-H", engine.host, "compose", "exec", "worker", "sh", "-c",
            "tty; exit 5"], program=MOOR, cwd=str(folder))
        assert (code, shown.replace(b"\r\n", b"\n").splitlines()[-1:]) == (5, [b"/dev/pts/0"])
        shown, code = run_in_pty(engine.daemon, [  # type: ignore[arg-type]
            "-H", engine.host, "compose", "run", "--rm", "--no-deps", "worker", "sh", "-c",
            "read x; echo got $x"], input=b"typed\r", program=MOOR, cwd=str(folder))
        assert code == 0
        assert b"got typed" in shown
    finally:
        ok(engine.compose(folder, "down"))
    assert engine.docker("ps", "-aq").stdout == b""


def test_cp_both_ways(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "up", "-d", "worker"))
        (tmp_path / "in.txt").write_text("to the container\n")
        ok(engine.compose(folder, "cp", str(tmp_path / "in.txt"), "worker:/tmp/copied.txt"))
        assert ok(engine.compose(folder, "exec", "-T", "worker", "cat", "/tmp/copied.txt")) \
            == "to the container\n"
        ok(engine.compose(folder, "cp", "worker:/tmp/copied.txt", str(tmp_path / "out.txt")))
        assert (tmp_path / "out.txt").read_text() == "to the container\n"
        ok(engine.compose(folder, "cp", "worker:/etc", str(tmp_path)))
        assert (tmp_path / "etc" / "passwd").is_file()
        missing = engine.compose(folder, "cp", "worker:/nope", str(tmp_path))
        assert missing.returncode == 1
        assert "Error response from daemon: Could not find the file /nope in container" \
            in missing.stderr
    finally:
        ok(engine.compose(folder, "down"))


def test_events(engine: ComposeEngine, tmp_path: Path) -> None:
    import subprocess

    folder = project(tmp_path, engine, SIMPLE)
    watcher = engine.popen(folder, "events", "--json", stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)
        ok(engine.compose(folder, "up", "-d", "worker"))
        seen = []
        while len([e for e in seen if e["action"] == "start"]) < 1:
            seen.append(json.loads(watcher.stdout.readline()))  # type: ignore[union-attr]
        start = next(e for e in seen if e["action"] == "start")
        assert start["service"] == "worker"
        assert start["attributes"]["name"] == "proj-worker-1"
    finally:
        watcher.kill()
        watcher.wait()
        ok(engine.compose(folder, "down"))


def test_secrets_and_configs(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          app:
            <<: *sleeper
            secrets: [from_file, {source: from_env, target: token}]
            configs: [{source: inline, target: /etc/app.conf}]
        secrets:
          from_file: {file: ./secret.txt}
          from_env: {environment: TOKEN}
        configs:
          inline: {content: "level=${LEVEL:-debug}"}
        """)
    (folder / "secret.txt").write_text("s3cret\n")
    (folder / ".env").write_text("TOKEN=abc\n")
    try:
        ok(engine.compose(folder, "up", "-d"))
        shown = ok(engine.compose(folder, "exec", "-T", "app", "cat", "/run/secrets/from_file",
                                  "/run/secrets/token", "/etc/app.conf"))
        assert shown == "s3cret\nabcLEVEL=debug".replace("LEVEL=", "level=")
    finally:
        ok(engine.compose(folder, "down"))


def test_port_already_taken_fails_and_down_cleans(
        engine: ComposeEngine, tmp_path: Path) -> None:
    port = str(free_port())  # 127.0.0.1 is the host's on moord: a fixed port may be taken
    folder = project(tmp_path, engine, """
        services:
          first:
            <<: *sleeper
            ports: ["127.0.0.1:PORT:80"]
          second:
            <<: *sleeper
            ports: ["127.0.0.1:PORT:80"]
            depends_on: [first]
        """.replace("PORT", port))
    try:
        result = engine.compose(folder, "up", "-d")
        assert result.returncode == 1
        assert "Error response from daemon: " in result.stderr
        assert port in result.stderr
        first, second = inspect(engine, "proj-first-1", "proj-second-1")
        assert first["State"]["Running"] and not second["State"]["Running"]
        assert ok(engine.compose(folder, "port", "first", "80")) == f"127.0.0.1:{port}\n"
    finally:
        ok(engine.compose(folder, "down"))
    assert engine.docker("ps", "-aq").stdout == b""


def test_create_kill_wait_rm_restart_images_version(engine: ComposeEngine,
                                                     tmp_path: Path) -> None:
    folder = project(tmp_path, engine, SIMPLE)
    try:
        ok(engine.compose(folder, "create"))
        assert [c["State"]["Status"] for c in inspect(engine, "proj-web-1",
                                                      "proj-worker-1")] == ["created"] * 2
        ok(engine.compose(folder, "start"))
        ok(engine.compose(folder, "restart", "-t", "1", "worker"))
        assert inspect(engine, "proj-worker-1")[0]["RestartCount"] == 0
        assert inspect(engine, "proj-worker-1")[0]["State"]["Running"]
        # pid 1 ignores SIGTERM it has no handler for: the kill's signal is the one asked for
        ok(engine.compose(folder, "kill", "-s", "SIGKILL", "worker"))
        waited = engine.compose(folder, "wait", "worker")
        assert (waited.returncode, waited.stdout) == (137, "137\n")
        refused = engine.compose(folder, "rm", "worker")
        assert refused.returncode == 1  # no terminal to ask on, and no -f
        ok(engine.compose(folder, "rm", "-f", "worker"))
        assert ok(engine.compose(folder, "ps", "-a", "--services")) == "web\n"
        images = ok(engine.compose(folder, "images")).splitlines()
        assert images[0].split() == ["CONTAINER", "REPOSITORY", "TAG", "IMAGE", "ID", "SIZE"]
        assert images[1].split()[:3] == ["proj-web-1", "busybox", "latest"]
        assert ok(engine.compose(folder, "version", "--short")).strip()
        missing = engine.compose(folder, "logs", "nope")
        assert (missing.returncode, missing.stderr) == (1, "no such service: nope\n")
    finally:
        ok(engine.compose(folder, "down"))


def test_logs_follow(engine: ComposeEngine, tmp_path: Path) -> None:

    folder = project(tmp_path, engine, """
        services:
          ticker:
            image: busybox:latest
            command: sh -c 'for i in 1 2 3; do echo tick $$i; sleep 0.3; done'
        """)
    try:
        ok(engine.compose(folder, "up", "-d"))
        follow = engine.compose(folder, "logs", "-f", timeout=30)
        assert follow.stdout.splitlines() == [f"proj-ticker-1  | tick {i}" for i in (1, 2, 3)]
    finally:
        ok(engine.compose(folder, "down"))


def test_attached_up_stops_everything_on_interrupt(engine: ComposeEngine,
                                                   tmp_path: Path) -> None:
    import signal
    import subprocess

    folder = project(tmp_path, engine, SIMPLE)
    # Started with SIGINT ignored, as a non-interactive shell's `cmd &` starts it: Compose
    # stops on it all the same.
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        attached = engine.popen(folder, "up", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        lines = []
        while not any("hello from web" in line for line in lines):
            lines.append(attached.stdout.readline())  # type: ignore[union-attr]
        attached.send_signal(signal.SIGINT)
        assert attached.wait(timeout=60) == 130
        assert ok(engine.compose(folder, "ps", "-q")) == ""
        assert len(ok(engine.compose(folder, "ps", "-aq")).split()) == 2
    finally:
        if attached.poll() is None:
            attached.kill()
            attached.wait()
        ok(engine.compose(folder, "down"))


def test_watch_sync_sync_restart_and_rebuild(engine: ComposeEngine, tmp_path: Path) -> None:
    import subprocess

    folder = project(tmp_path, engine, """
        services:
          app:
            image: busybox:latest
            command: sh -c 'cat /app/conf.txt 2>/dev/null; exec sleep 600'
            stop_signal: SIGKILL
            develop:
              watch:
                - {action: sync, path: ./src, target: /app/src, ignore: [tmp/]}
                - {action: sync+restart, path: ./conf.txt, target: /app/conf.txt}
          built:
            build: ./img
            command: sleep 600
            stop_signal: SIGKILL
            develop:
              watch:
                - {action: rebuild, path: ./img}
        """)
    (folder / "img").mkdir()
    (folder / "img" / "Dockerfile").write_text("FROM busybox:latest\nCOPY version /\n")
    (folder / "img" / "version").write_text("v1\n")
    (folder / "src" / "tmp").mkdir(parents=True)
    (folder / "src" / "a.txt").write_text("one\n")
    (folder / "conf.txt").write_text("v1\n")
    watcher = engine.popen(folder, "watch", stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)

    def shown(path: str, service: str = "app") -> str:
        result = engine.compose(folder, "exec", "-T", service, "cat", path)
        return result.stdout if result.returncode == 0 else ""

    def eventually(check: object) -> None:
        deadline = time.monotonic() + 20
        while not check() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.2)
        assert check(), watcher.stderr  # type: ignore[operator]
    try:
        eventually(lambda: engine.docker("inspect", "proj-app-1").returncode == 0)
        time.sleep(0.6)
        (folder / "src" / "a.txt").write_text("two\n")
        (folder / "src" / "new.txt").write_text("new\n")
        (folder / "src" / "tmp" / "skip.txt").write_text("skip\n")
        eventually(lambda: shown("/app/src/a.txt") == "two\n")
        assert shown("/app/src/new.txt") == "new\n"
        assert shown("/app/src/tmp/skip.txt") == ""
        (folder / "src" / "new.txt").unlink()
        eventually(lambda: shown("/app/src/new.txt") == "")
        started = inspect(engine, "proj-app-1")[0]["State"]["StartedAt"]
        (folder / "conf.txt").write_text("v2\n")
        eventually(lambda: inspect(engine, "proj-app-1")[0]["State"]["StartedAt"] != started)
        assert shown("/app/conf.txt") == "v2\n"
        assert shown("/version", "built") == "v1\n"
        (folder / "img" / "version").write_text("v2\n")
        eventually(lambda: shown("/version", "built") == "v2\n")
    finally:
        watcher.kill()
        watcher.wait()
        ok(engine.compose(folder, "down", "--rmi", "local"))


def test_service_keys_reach_the_engine(engine: ComposeEngine, tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          base:
            <<: *sleeper
          app:
            image: busybox:latest
            command: sleep 600
            stop_signal: SIGTERM
            stop_grace_period: 3s
            user: "1000"
            working_dir: /tmp
            hostname: apphost
            init: true
            labels: {tier: app}
            volumes_from: ["base:ro"]
            pull_policy: never
            deploy:
              restart_policy: {condition: on-failure, max_attempts: 2}
              resources:
                limits: {memory: 64m, pids: 50}
            ulimits: {nofile: {soft: 1024, hard: 2048}}
            device_cgroup_rules: ["c 1:3 mr"]
            healthcheck:
              test: ["CMD", "true"]
              interval: 30s
        """)
    try:
        ok(engine.compose(folder, "up", "-d"))
        app = inspect(engine, "proj-app-1")[0]
        config, host = app["Config"], app["HostConfig"]
        assert (config["User"], config["WorkingDir"], config["Hostname"]) == \
            ("1000", "/tmp", "apphost")
        assert (config["StopSignal"], config["StopTimeout"]) == ("SIGTERM", 3)
        assert config["Labels"]["tier"] == "app"
        assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30_000_000_000}
        assert host["Init"] is True
        assert host["VolumesFrom"] == ["proj-base-1:ro"]
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert (host["Memory"], host["PidsLimit"]) == (64 * 1024 * 1024, 50)
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert host["DeviceCgroupRules"] == ["c 1:3 mr"]
    finally:
        ok(engine.compose(folder, "down"))
    (folder / "compose.yaml").write_text(
        "services:\n  x:\n    image: nosuch:v1\n    pull_policy: never\n")
    refused = engine.compose(folder, "up", "-d")
    assert (refused.returncode, refused.stderr) == (1, " x  Error\nNo such image: nosuch:v1\n")


def test_docker_compose_without_networks_on_either_engine(engine: ComposeEngine,
                                                          tmp_path: Path) -> None:
    """docker-compose 1.29 unmodified, on a project moord can run today (no networks):
    up -d, ps, logs, exec, run --rm, down give what moor compose sees."""
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(textwrap.dedent(SIMPLE).replace(
        "    image: busybox", "    network_mode: none\n    image: busybox"))
    try:
        ok(engine.docker_compose(folder, "up", "-d"))
        theirs = sorted(ok(engine.docker_compose(folder, "ps", "-q")).split())
        assert len(theirs) == 2
        assert sorted(ok(engine.compose(folder, "ps", "-q")).split()) == theirs
        time.sleep(0.5)
        logs = ok(engine.docker_compose(folder, "logs", "--no-color", "worker"))
        assert [line.split("|", 1)[1] for line in logs.splitlines() if "|" in line] == \
            [" worker ready"]
        assert ok(engine.docker_compose(folder, "exec", "-T", "worker", "echo", "x")) == "x\n"
        run = engine.docker_compose(folder, "run", "--rm", "-T", "worker", "echo", "once")
        assert ok(run).splitlines()[-1:] == ["once"]
        ok(engine.docker_compose(folder, "down"))
        assert engine.docker("ps", "-aq").stdout == b""
    finally:
        ok(engine.compose(folder, "down"))


def test_run_starts_its_dependencies_and_waits_for_them(engine: ComposeEngine,
                                                        tmp_path: Path) -> None:
    folder = project(tmp_path, engine, """
        services:
          setup:
            image: busybox:latest
            command: sh -c 'sleep 1; echo ready'
          app:
            image: busybox:latest
            depends_on:
              setup: {condition: service_completed_successfully}
        """)
    try:
        result = engine.compose(folder, "run", "--rm", "-T", "app", "echo", "after")
        assert ok(result) == "after\n"
        assert inspect(engine, "proj-setup-1")[0]["State"]["ExitCode"] == 0
        assert ok(engine.compose(folder, "ps", "-aq", "app")) == ""
    finally:
        ok(engine.compose(folder, "down"))


def test_networks_aliases_static_address_and_name_resolution(
        engine: ComposeEngine, tmp_path: Path) -> None:
    # 198.18.0.0/15 (RFC 2544) lies outside the engines' default pools, which the daemons
    # of parallel test runs fill as far as 172.31.0.0/16.
    folder = project(tmp_path, engine, """
        services:
          a:
            <<: *sleeper
            networks: [back, front]
          b:
            <<: *sleeper
            networks:
              back:
                aliases: [bee]
                ipv4_address: 198.18.5.10
        networks:
          back:
            ipam:
              config: [{subnet: 198.18.5.0/24}]
          front:
            labels: {role: front}
        """)
    try:
        ok(engine.compose(folder, "up", "-d"))
        a, b = inspect(engine, "proj-a-1", "proj-b-1")
        assert set(a["NetworkSettings"]["Networks"]) == {"proj_back", "proj_front"}
        assert b["NetworkSettings"]["Networks"]["proj_back"]["IPAddress"] == "198.18.5.10"
        assert "bee" in b["NetworkSettings"]["Networks"]["proj_back"]["Aliases"]
        front = json.loads(engine.docker("network", "inspect", "proj_front").stdout)[0]
        assert front["Labels"] == {"role": "front", PREFIX + "network": "front",
                                   PREFIX + "project": "proj",
                                   PREFIX + "version": front["Labels"][PREFIX + "version"]}
        for name in ("b", "bee", "proj-b-1"):
            ok(engine.compose(folder, "exec", "-T", "a", "ping", "-c1", "-W2", name))
    finally:
        ok(engine.compose(folder, "down"))
    assert b"proj_back" not in engine.docker("network", "ls").stdout


def test_depends_on_restart_restarts_dependents(engine: ComposeEngine, tmp_path: Path) -> None:
    """`restart: true` under depends_on: the dependent restarts with its dependency, on
    `restart` (unless --no-deps) and when `up` recreates the dependency; plain
    depends_on does not."""
    folder = project(tmp_path, engine, """
        services:
          db:
            <<: *sleeper
            environment: {V: "${V:-1}"}
          app:
            <<: *sleeper
            depends_on:
              db: {condition: service_started, restart: true}
          other:
            <<: *sleeper
            depends_on: [db]
        """)

    def started() -> dict[str, tuple[str, str]]:
        return {c["Name"]: (c["Id"], c["State"]["StartedAt"]) for c in inspect(
            engine, "proj-db-1", "proj-app-1", "proj-other-1") if c["State"]["Running"]}
    try:
        ok(engine.compose(folder, "up", "-d"))
        before = started()
        ok(engine.compose(folder, "restart", "--no-deps", "db"))
        after = started()
        assert after["/proj-app-1"] == before["/proj-app-1"]
        assert after["/proj-db-1"] != before["/proj-db-1"]
        ok(engine.compose(folder, "restart", "db"))
        again = started()
        assert again["/proj-app-1"][1] > after["/proj-app-1"][1]
        assert again["/proj-db-1"][1] > after["/proj-db-1"][1]
        assert again["/proj-other-1"] == before["/proj-other-1"]
        (folder / ".env").write_text("V=2\n")
        ok(engine.compose(folder, "up", "-d"))
        recreated = started()
        assert len(recreated) == 3
        assert recreated["/proj-db-1"][0] != again["/proj-db-1"][0]
        assert recreated["/proj-app-1"][0] == again["/proj-app-1"][0]  # kept, restarted
        assert recreated["/proj-app-1"][1] > recreated["/proj-db-1"][1]
        assert recreated["/proj-other-1"] == before["/proj-other-1"]
    finally:
        ok(engine.compose(folder, "down"))


def test_pull_push_and_up_use_the_stored_registry_credentials(engine: ComposeEngine,
                                                              tmp_path: Path) -> None:
    """A registry on 127.0.0.1 that wants a password: refused before `moor login`, then
    push, pull and up's pull send the stored credentials (X-Registry-Auth)."""

    htpasswd = write_htpasswd(str(tmp_path / "htpasswd"), {"dev": "letmein"})
    with start_moor(str(tmp_path / "registry"), "--htpasswd", htpasswd,
                    netns=getattr(engine.daemon, "netns", "")) as registry:
        image = f"{registry.host}/proj/app:v1"
        folder = project(tmp_path, engine, f"""
            services:
              app:
                image: {image}
                command: sleep 600
                stop_signal: SIGKILL
            """)
        engine.docker("tag", "busybox:latest", image, check=True)
        try:
            refused = engine.compose(folder, "push", "app")
            assert refused.returncode == 1
            assert f"failed to push {image}: " in refused.stderr
            ok(engine.moor("login", registry.host, "-u", "dev", "--password-stdin",
                           input="letmein"))
            ok(engine.compose(folder, "push", "app"))
            engine.docker("rmi", image, check=True)
            ok(engine.compose(folder, "pull"))
            engine.docker("image", "inspect", image, check=True)
            engine.docker("rmi", image, check=True)
            ok(engine.compose(folder, "up", "-d"))
            assert inspect(engine, "proj-app-1")[0]["State"]["Running"]
        finally:
            ok(engine.compose(folder, "down", "--rmi", "all"))
            engine.moor("logout", registry.host)
