"""The same command lines through `moor` and `docker` against one dockerd: same exit
codes, same output once IDs and times are masked."""

from __future__ import annotations

import re

import pytest
from conftest import Clis

ID = re.compile(rb"\b[0-9a-f]{12}(?:[0-9a-f]{52})?\b")
TIMES = re.compile(rb"(Less than a second|About a minute|\d+ (second|minute)s?)")
NAME = re.compile(rb"[a-z]+_[a-z]+\b")


def masked(data: bytes) -> bytes:
    data = ID.sub(b"<id>", data)
    data = TIMES.sub(b"<time>", data)
    # tables align on the widest cell; masking changes widths, so compare words
    return b" ".join(data.split())


def same(clis: Clis, *args: str, stderr: bool = True, **kw: object) -> None:
    ours, theirs = clis.moor(*args, **kw), clis.docker(*args, **kw)
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    assert masked(ours.stdout) == masked(theirs.stdout), (args, ours.stdout, theirs.stdout)
    if stderr:
        assert masked(ours.stderr.replace(b"moor", b"docker")) == \
            masked(theirs.stderr), (args, ours.stderr, theirs.stderr)


@pytest.mark.parametrize("args", [
    ("run", "--rm", "busybox", "echo", "hello"),
    ("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"),
    ("run", "--rm", "-e", "A=1", "-e", "B", "-w", "/tmp", "-u", "1:2", "busybox", "sh", "-c",
     "echo $A $B; pwd; id -u; id -g"),
    ("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint"),
    ("run", "--rm", "-i", "busybox", "cat"),
    ("run", "--rm", "--read-only", "busybox", "touch", "/x"),
    ("run", "--rm", "--tmpfs", "/scratch", "busybox", "sh", "-c", "grep -c scratch /proc/mounts"),
    ("run", "--rm", "--label", "a=b", "busybox", "true"),
    ("images",),
    ("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"),
    ("images", "-q"),
    ("image", "ls", "busybox"),
    ("ps", "-a"),
])
def test_same_output(clis: Clis, args: tuple[str, ...]) -> None:
    same(clis, *args, stderr=False, input=b"typed\n")


def test_run_errors_exit_codes(clis: Clis) -> None:
    for args in (("run", "--rm", "busybox", "nosuchcmd"), ("run", "--rm", "busybox", "/etc")):
        ours, theirs = clis.moor(*args), clis.docker(*args)
        assert (ours.returncode, theirs.returncode) in ((127, 127), (126, 126))
        assert b"Run 'moor run --help' for more information" in ours.stderr


def test_lifecycle(clis: Clis) -> None:
    for cli in (clis.moor, clis.docker):
        assert cli("run", "-d", "--name", "life", "-l", "k=v", "busybox", "sleep", "60"
                   ).returncode == 0
        ps = cli("ps", "--format", "{{.Names}} {{.State}} {{.Labels}} {{.Command}}")
        assert ps.stdout == b'life running k=v "sleep 60"\n'
        assert cli("exec", "life", "sh", "-c", "exit 5").returncode == 5
        assert cli("exec", "-e", "X=7", "life", "sh", "-c", "echo $X").stdout == b"7\n"
        assert cli("inspect", "-f", "{{.State.Status}} {{.Config.Labels.k}}", "life"
                   ).stdout == b"running v\n"
        assert cli("pause", "life").stdout == b"life\n"
        assert cli("inspect", "-f", "{{.State.Paused}}", "life").stdout == b"true\n"
        assert cli("unpause", "life").returncode == 0
        assert cli("rename", "life", "life2").returncode == 0
        assert cli("top", "life2").stdout.startswith(b"UID")
        assert cli("kill", "-s", "KILL", "life2").stdout == b"life2\n"
        assert cli("wait", "life2").stdout == b"137\n"
        assert cli("start", "life2").stdout == b"life2\n"
        assert cli("stop", "-t", "1", "life2").stdout == b"life2\n"
        assert cli("rm", "life2").stdout == b"life2\n"


def test_logs(clis: Clis) -> None:
    clis.docker("run", "--name", "talk", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; done")
    same(clis, "logs", "talk")
    same(clis, "logs", "--tail", "1", "talk")
    ours, theirs = clis.moor("logs", "-t", "talk"), clis.docker("logs", "-t", "talk")
    assert ours.stdout == theirs.stdout


def test_missing_objects(clis: Clis) -> None:
    same(clis, "rm", "nosuch")
    same(clis, "rmi", "nosuch")
    same(clis, "inspect", "nosuch")
    same(clis, "logs", "nosuch")
    same(clis, "stop", "nosuch", "nosuch2")


def test_flag_errors(clis: Clis) -> None:
    same(clis, "run", "--x", "busybox")
    same(clis, "run", "-e")
    same(clis, "ps", "-z")
    same(clis, "stop", "-t", "x", "c")
    same(clis, "rm")
    same(clis, "foo")
    same(clis, "container", "foo")


def test_tag_rmi_save_load(clis: Clis, tmp_path: object) -> None:
    for cli in (clis.moor, clis.docker):
        assert cli("tag", "busybox", "mybox:1").returncode == 0
        listed = cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert b"mybox:1" in listed
        out = cli("rmi", "mybox:1")
        assert out.stdout == b"Untagged: mybox:1\n", out
    archive = f"{tmp_path}/b.tar"
    assert clis.moor("save", "-o", archive, "busybox").returncode == 0
    loaded = clis.moor("load", "-i", archive)
    assert loaded.returncode == 0 and b"busybox:latest" in loaded.stdout


def test_version_and_info(clis: Clis) -> None:
    fmt = "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}"
    assert clis.moor("version", "--format", fmt).stdout == clis.docker(
        "version", "--format", fmt).stdout
    fmt = "{{.Images}} {{.Containers}} {{.Driver}} {{json .Plugins.Volume}}"
    assert clis.moor("info", "--format", fmt).stdout == clis.docker("info", "--format", fmt).stdout
    assert b"Server Version:" in clis.moor("info").stdout
