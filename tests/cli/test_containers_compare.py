"""Container commands through `moor` and `docker` against one daemon (dockerd, then moord):
the lifecycle verbs, ps and its filters, logs, exec, inspect and stats."""

from __future__ import annotations

import time

from clikit import Clis
from test_compare import masked, same


def test_lifecycle(clis: Clis) -> None:
    """Each verb through moor then docker on twin containers; same output, same states."""
    for cli, name in ((clis.moor, "life-m"), (clis.docker, "life-d")):
        created = cli("create", "--name", name, "-l", "k=v", "busybox", "sleep", "60")
        assert created.returncode == 0 and len(created.stdout.strip()) == 64, created.stderr
        for verb, extra, state in (("start", (), "running"), ("pause", (), "paused"),
                                   ("unpause", (), "running"), ("stop", ("-t", "1"), "exited"),
                                   ("restart", ("-t", "1"), "running"),
                                   ("kill", ("-s", "KILL"), "")):
            done = cli(verb, *extra, name)
            assert (done.returncode, done.stdout) == (0, f"{name}\n".encode()), (verb, done)
            if not state:  # kill returns once the signal is sent, before the exit
                assert cli("wait", name).stdout == b"137\n"
                state = "exited"
            shown = cli("inspect", "-f", "{{.State.Status}} {{.Config.Labels.k}}", name)
            assert shown.stdout == f"{state} v\n".encode(), (verb, shown)
        assert cli("rename", name, name + "2").returncode == 0
        assert cli("rm", name + "2").stdout == f"{name}2\n".encode()
    same(clis, "wait", "life-m2")
    same(clis, "rename", "nosuch", "x")


def test_exec(clis: Clis) -> None:
    assert clis.docker("run", "-d", "--name", "ex", "busybox", "sleep", "60").returncode == 0
    assert same(clis, "exec", "ex", "sh", "-c", "exit 5").returncode == 5
    assert same(clis, "exec", "-i", "ex", "cat", input=b"piped\n").stdout == b"piped\n"
    assert same(clis, "exec", "-t", "ex", "echo", "tty").stdout == b"tty\r\n"
    assert same(clis, "exec", "-e", "X=7", "-w", "/tmp", "-u", "1:2", "ex", "sh", "-c",
                "echo $X; pwd; id -u; id -g").stdout == b"7\n/tmp\n1\n2\n"


def test_exec_missing_command(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "ex2", "busybox", "sleep", "60")
    assert same(clis, "exec", "ex2", "nosuchcmd").returncode == 126


def test_ps(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "web", "-l", "tier=front", "busybox", "sleep", "60")
    clis.docker("run", "--name", "job", "busybox", "sh", "-c", "exit 2")
    clis.docker("create", "--name", "fresh", "busybox", "true")
    for args in (("ps",), ("ps", "-a"), ("ps", "-q"), ("ps", "-aq"), ("ps", "-a", "--no-trunc"),
                 ("ps", "-a", "--format", "{{.Names}}\t{{.Status}}\t{{.Command}}"),
                 ("ps", "-a", "--format", "table {{.Names}}\t{{.Image}}\t{{.State}}"),
                 ("ps", "-a", "--format", "{{json .Labels}} {{.Label \"tier\"}}"),
                 ("ps", "-a", "--filter", "name=web"), ("ps", "-a", "--filter", "status=exited"),
                 ("ps", "-a", "--filter", "label=tier=front"),
                 ("ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}"),
                 ("ps", "-n", "1", "--format", "{{.Names}}"), ("container", "ls", "-l")):
        same(clis, *args)
    listed = clis.moor("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.splitlines()
    assert sorted(listed) == [b"fresh created", b"job exited", b"web running"]


def test_logs(clis: Clis) -> None:
    # stderr first and apart: the two streams' relative order is not the log's to keep
    clis.docker("run", "--name", "talk", "busybox", "sh", "-c",
                "echo oops >&2; sleep 0.2; for i in 1 2 3; do echo $i; done")
    same(clis, "logs", "talk")
    assert same(clis, "logs", "--tail", "1", "talk").stdout == b"3\n"
    assert same(clis, "logs", "-n", "2", "talk").stdout == b"2\n3\n"
    ours, theirs = clis.moor("logs", "-t", "talk"), clis.docker("logs", "-t", "talk")
    assert ours.stdout == theirs.stdout and ours.stdout.count(b"Z ") == 3
    assert ours.stderr == theirs.stderr and ours.stderr.endswith(b"Z oops\n")


def test_logs_follow(clis: Clis) -> None:
    """-f streams until the container exits: moor's follow outlives the sleep."""
    clis.docker("run", "-d", "--name", "slow", "busybox", "sh", "-c",
                "echo a; sleep 1; echo b")
    start = time.monotonic()
    ours = clis.moor("logs", "-f", "slow")
    assert ours.stdout == b"a\nb\n" and time.monotonic() - start > 0.5
    same(clis, "logs", "-f", "slow")


def test_inspect(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "insp", "-e", "K=V", "busybox", "sleep", "60")
    for fmt in ("{{.State.Status}} {{.Name}} {{.Config.Cmd}}", "{{json .Config.Env}}",
                "{{.HostConfig.Memory}} {{.State.Running}} {{.Id}}",
                "{{range .Config.Env}}[{{.}}]{{end}}"):
        same(clis, "inspect", "-f", fmt, "insp")
        same(clis, "container", "inspect", "--format", fmt, "insp")
    same(clis, "inspect", "-f", "{{.Name}}", "insp", "nosuch")
    same(clis, "inspect", "--type", "image", "-f", "{{.Os}}", "busybox")


def test_top(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "topped", "busybox", "sleep", "60")
    ours, theirs = clis.moor("top", "topped"), clis.docker("top", "topped")
    # the C (CPU) and TIME columns move between two calls (and with them the columns'
    # widths): compare the titles, the rows and the command
    assert ours.stdout.split(b"\n", 1)[0].split() == theirs.stdout.split(b"\n", 1)[0].split()
    assert len(ours.stdout.splitlines()) == len(theirs.stdout.splitlines())
    assert ours.stdout.startswith(b"UID ") and ours.stdout.endswith(b" sleep 60\n")


def test_stats_no_stream(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "st", "busybox", "sleep", "60")
    fmt = "{{.Name}} {{.Container}} {{.PIDs}}"
    ours = same(clis, "stats", "--no-stream", "--format", fmt, "st")
    assert ours.stdout.startswith(b"st ") and ours.stdout.endswith(b" 1\n")
    table = clis.moor("stats", "--no-stream", "st").stdout.decode().splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert table[1].split()[1] == "st"
    fmt = "table {{.Name}}\t{{.PIDs}}"
    assert masked(clis.moor("stats", "--no-stream", "--format", fmt).stdout) == b"NAME PIDS st 1"
