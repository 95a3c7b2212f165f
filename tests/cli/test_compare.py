"""The same command lines through `moor` and `docker` against one daemon (dockerd, then
moord): same exit codes, same output once IDs and times are masked. Where the output is
deterministic it is also checked against the expected text, so an engine that ignores
a flag is not excused by both command lines printing the same wrong thing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from clikit import Clis

ID = re.compile(rb"\b(?:sha256:)?[0-9a-f]{12}(?:[0-9a-f]{52})?\b")
TIMES = re.compile(rb"(Less than a second|About an? (minute|hour)|\d+ (second|minute|hour)s?)")


def masked(data: bytes) -> bytes:
    data = ID.sub(b"<id>", data)
    data = TIMES.sub(b"<time>", data)
    # tables align on the widest cell; masking changes widths, so compare words
    return b" ".join(data.split())


def same(clis: Clis, *args: str, stderr: bool = True,
         **kw: object) -> subprocess.CompletedProcess:
    """Run `args` through both; assert they agree; return moor's result."""
    ours, theirs = clis.moor(*args, **kw), clis.docker(*args, **kw)
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    assert masked(ours.stdout) == masked(theirs.stdout), (args, ours.stdout, theirs.stdout)
    if stderr:
        assert masked(ours.stderr.replace(b"moor", b"docker")) == \
            masked(theirs.stderr), (args, ours.stderr, theirs.stderr)
    return ours


CG = "/sys/fs/cgroup"
V2 = os.path.exists(f"{CG}/cgroup.controllers")
MEMORY = f"{CG}/memory.max" if V2 else f"{CG}/memory/memory.limit_in_bytes"
CPU = f"{CG}/cpu.max" if V2 else f"{CG}/cpu/cpu.cfs_quota_us"
PIDS = f"{CG}/pids.max" if V2 else f"{CG}/pids/pids.max"
# (command line, moor's expected stdout or None when only the two CLIs are compared)
RUNS: list[tuple[tuple[str, ...], bytes | None]] = [
    (("run", "--rm", "busybox", "echo", "hello"), b"hello\n"),
    (("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"), b"out\n"),
    (("run", "--rm", "-e", "A=1", "-e", "B", "-w", "/tmp", "-u", "1:2", "busybox", "sh", "-c",
      "echo $A $B; pwd; id -u; id -g"), b"1\n/tmp\n1\n2\n"),
    (("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint"),
     b"via entrypoint\n"),
    (("run", "--rm", "-i", "busybox", "cat"), b"typed\n"),
    (("run", "--rm", "-t", "busybox", "echo", "on a tty"), b"on a tty\r\n"),
    (("run", "--rm", "--name", "named", "busybox", "cat", "/etc/hostname"), None),
    (("run", "--rm", "--read-only", "busybox", "touch", "/x"), b""),
    (("run", "--rm", "--tmpfs", "/scratch", "busybox", "sh", "-c",
      "grep -c ' /scratch tmpfs' /proc/mounts"), b"1\n"),
    (("run", "--rm", "--label", "a=b", "busybox", "true"), b""),
    (("run", "--rm", "--memory", "64m", "busybox", "cat", MEMORY), b"67108864\n"),
    (("run", "--rm", "--cpus", "0.5", "busybox", "cat", CPU),
     b"50000 100000\n" if V2 else b"50000\n"),
    (("run", "--rm", "--pids-limit", "20", "busybox", "cat", PIDS), b"20\n"),
    (("run", "--rm", "--cap-drop", "CHOWN", "busybox", "sh", "-c",
      "chown 1000 /tmp 2>/dev/null; echo rc=$?"), b"rc=1\n"),
    (("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"),
     b"/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' ' "),
    (("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "echo via-runc; exit 4"),
     b"via-runc\n"),
    (("run", "--rm", "--cpu-period", "50000", "--cpu-quota", "25000", "busybox", "cat", CPU),
     b"25000 50000\n" if V2 else b"25000\n"),
    (("run", "--rm", "--cpuset-cpus", "0", "busybox", "cat",
      f"{CG}/cpuset.cpus" if V2 else f"{CG}/cpuset/cpuset.cpus"), b"0\n"),
    (("run", "--rm", "--memory", "64m", "--memory-swap", "96m", "busybox", "cat",
      f"{CG}/memory.swap.max" if V2 else f"{CG}/memory/memory.memsw.limit_in_bytes"),
     b"33554432\n" if V2 else b"100663296\n"),
    (("run", "--rm", "--oom-score-adj", "300", "busybox", "cat", "/proc/self/oom_score_adj"),
     b"300\n"),
    (("run", "--rm", "--group-add", "1234", "-u", "5", "busybox", "id", "-G"), b"0 1234\n"),
    (("run", "--rm", "--domainname", "example.org", "busybox", "cat",
      "/proc/sys/kernel/domainname"), b"example.org\n"),
    (("run", "--rm", "--dns", "127.0.0.1", "--dns-search", "a.example", "--dns-option",
      "ndots:2", "busybox", "sh", "-c", "grep -v ^# /etc/resolv.conf | sort"),
     b"nameserver 127.0.0.1\noptions ndots:2\nsearch a.example\n"),
    (("run", "--rm", "--pid", "host", "--ipc", "host", "--uts", "host", "busybox", "sh", "-c",
      "for ns in pid ipc uts; do readlink /proc/self/ns/$ns; done"),
     "".join(os.readlink(f"/proc/self/ns/{ns}") + "\n" for ns in ("pid", "ipc", "uts")).encode()),
    (("run", "--rm", "busybox", "nosuchcmd"), None),
    (("run", "--rm", "busybox", "/etc"), None),
    (("run", "--rm", "nosuchimage:v1", "true"), b""),
]


@pytest.mark.parametrize(("args", "expected"), RUNS, ids=[" ".join(a[2:5]) for a, _ in RUNS])
def test_run(clis: Clis, args: tuple[str, ...], expected: bytes | None) -> None:
    # stderr differs by design where the engines word their errors differently;
    # the two CLIs against one engine must still agree on it, modulo the program name.
    ours = same(clis, *args, stderr="nosuchimage" not in args[2], input=b"typed\n")
    if expected is not None:
        assert ours.stdout == expected, ours.stderr


def test_run_bind_mount(clis: Clis, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the host\n")
    ours = same(clis, "run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "sh", "-c",
                "cat /data/data.txt; touch /data/x 2>/dev/null || echo ro")
    assert ours.stdout == b"from the host\nro\n"


def test_run_errors_exit_codes(clis: Clis) -> None:
    for args in (("run", "--rm", "busybox", "nosuchcmd"), ("run", "--rm", "busybox", "/etc")):
        ours, theirs = clis.moor(*args), clis.docker(*args)
        assert (ours.returncode, theirs.returncode) in ((127, 127), (126, 126))
        assert b"Run 'moor run --help' for more information" in ours.stderr


def test_missing_objects(clis: Clis) -> None:
    same(clis, "rm", "nosuch")
    same(clis, "rmi", "nosuch")
    same(clis, "inspect", "nosuch")
    same(clis, "logs", "nosuch")
    same(clis, "stop", "nosuch", "nosuch2")
    same(clis, "exec", "nosuch", "true")


def test_flag_errors(clis: Clis) -> None:
    same(clis, "run", "--x", "busybox")
    same(clis, "run", "-e")
    same(clis, "ps", "-z")
    same(clis, "stop", "-t", "x", "c")
    same(clis, "rm")
    same(clis, "foo")
    same(clis, "container", "foo")


def test_version_and_info(clis: Clis) -> None:
    fmt = "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}} {{.Server.Os}}"
    same(clis, "version", "--format", fmt)
    fmt = "{{.Images}} {{.Containers}} {{.Driver}} {{.DockerRootDir}} {{json .Plugins.Volume}}"
    same(clis, "info", "--format", fmt)
    assert b"Server Version:" in clis.moor("info").stdout
    assert b"Server:" in clis.moor("version").stdout


def test_system_check(clis: Clis) -> None:
    """moorage's own fsck of the store; dockerd has no such endpoint."""
    done = clis.moor("system", "check")
    if clis.engine == "dockerd":
        assert done.returncode == 1 and b"page not found" in done.stderr
    else:
        assert done.returncode == 0, done.stderr


def test_network_ls_formats(clis: Clis) -> None:
    name = f"fmt-{os.urandom(3).hex()}"
    created = clis.docker("network", "create", "--label", "k=v", "--internal", name)
    assert created.returncode == 0, created.stderr
    try:
        for args in (("network", "ls"), ("network", "ls", "-q"),
                     ("network", "ls", "--no-trunc", "--filter", f"name={name}"),
                     ("network", "ls", "--filter", f"name={name}", "--format", "{{json .}}"),
                     ("network", "ls", "--filter", f"name={name}", "--format",
                      'table {{.Name}}\t{{.IPv4}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}'
                      '\t{{.Label "k"}}\t{{.CreatedAt}}')):
            same(clis, *args)
        shown = clis.moor("network", "ls", "--filter", f"name={name}", "--format",
                          '{{.Name}} {{.Internal}} {{.Label "k"}}')
        assert shown.stdout == f"{name} true v\n".encode()
        same(clis, "network", "rm", "-f", "nosuch-network")
        same(clis, "network", "rm", "nosuch-network")
    finally:
        clis.docker("network", "rm", name)


def test_cidfile_label_file_and_exec_env_file(clis: Clis, tmp_path: Path) -> None:
    labels, env = tmp_path / "labels", tmp_path / "env"
    labels.write_text("# a comment\ntier=web\n\nteam=core\n")
    env.write_text("FROM_FILE=1\n")
    for cli in (clis.moor, clis.docker):
        name, cidfile = f"cid-{cli.__name__}", tmp_path / f"cid-{cli.__name__}"
        ran = cli("run", "-d", "--cidfile", str(cidfile), "--label-file", str(labels),
                  "--name", name, "busybox", "sleep", "60")
        assert cidfile.read_text() == ran.stdout.decode().strip(), ran.stderr
        # a container ID file left by another container is not overwritten
        refused = cli("run", "--rm", "--cidfile", str(cidfile), "busybox", "true")
        assert refused.returncode == 125, refused.stderr
        assert f"container ID file found, make sure the other container isn't running or " \
               f"delete {cidfile}".encode() in refused.stderr
    shown = same(clis, "inspect", "-f", "{{.Config.Labels.tier}} {{.Config.Labels.team}}",
                 "cid-moor", "cid-docker")
    assert shown.stdout == b"web core\nweb core\n"
    shown = same(clis, "exec", "--env-file", str(env), "cid-moor", "sh", "-c", "echo $FROM_FILE")
    assert shown.stdout == b"1\n"
    clis.docker("rm", "-f", "cid-moor", "cid-docker")


def test_update_resources(clis: Clis) -> None:
    clis.docker("run", "-d", "--name", "upd", "busybox", "sleep", "60")
    try:
        same(clis, "update", "--cpu-period", "50000", "--cpu-quota", "20000", "--memory", "64m",
             "--memory-swap", "-1", "--memory-reservation", "32m", "upd")
        shown = same(clis, "inspect", "-f", "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} "
                     "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} "
                     "{{.HostConfig.MemoryReservation}}", "upd")
        assert shown.stdout == b"50000 20000 67108864 -1 33554432\n"
    finally:
        clis.docker("rm", "-f", "upd")
