"""linux.seccomp compiled by moorage.runtime.seccomp and loaded into a real process.

Each filter is compiled in the test process, as the runtime compiles it
before forking, and loaded in a forked child that reports what the kernel
did through a pipe.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import traceback
from typing import TYPE_CHECKING

import pytest

from moorage.errors import InvalidParameter
from moorage.runtime.seccomp import compile_filter

if TYPE_CHECKING:
    from collections.abc import Callable

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="loading a filter without no_new_privs needs CAP_SYS_ADMIN"
)

# An errno no syscall below returns by itself, so seeing it proves the filter acted.
MARK = errno.EBADFD


def seccomp_mode(status_path: str = "/proc/self/status") -> int:
    with open(status_path) as status:
        for line in status:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    raise AssertionError("no Seccomp: line in " + status_path)


def errno_of(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno or -1
    return 0


def getpriority_errno(which: int, who: int) -> int:
    return errno_of(lambda: os.getpriority(which, who))


def in_child(body: Callable[[], object]) -> tuple[int, object]:
    """Run body in a forked child; return its wait status and what it returned."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            # A SIGSYS death must not leave a core file behind.
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.write(write_end, json.dumps({"result": body()}).encode())
        except BaseException:
            code = 1
            os.write(write_end, json.dumps({"error": traceback.format_exc()}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        os.close(read_end)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in report, report["error"]
    return status, report.get("result")


def run_filtered(seccomp: dict[str, object], body: Callable[[], object]) -> object:
    """Compile in this process, load and run body in a child that must exit 0."""
    seccomp_filter = compile_filter(seccomp)

    def child() -> object:
        seccomp_filter.load()
        return body()

    status, result = in_child(child)
    assert os.waitstatus_to_exitcode(status) == 0
    return result


def rule(names: list[str], action: str, **fields: object) -> dict[str, object]:
    return {"names": names, "action": action, **fields}


def arg(index: int, op: str, value: int, value_two: int | None = None) -> dict[str, object]:
    cond: dict[str, object] = {"index": index, "op": op, "value": value}
    if value_two is not None:
        cond["valueTwo"] = value_two
    return cond


@needs_root
def test_allow_default_with_errno_rules(tmp_path: os.PathLike[str]) -> None:
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            # An unknown name is skipped; the known one in the same rule still applies.
            rule(["no_such_syscall", "mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=errno.ENOSYS),
            rule(["rmdir"], "SCMP_ACT_ERRNO"),
            # Same action as the default: skipped rather than rejected by libseccomp.
            rule(["getpid"], "SCMP_ACT_ALLOW"),
        ],
    }

    def body() -> object:
        return {
            "mkdir": errno_of(lambda: os.mkdir(os.path.join(tmp_path, "d"))),
            "rmdir": errno_of(lambda: os.rmdir(os.path.join(tmp_path, "absent"))),
            "getpid": os.getpid() > 0,
            "mode": seccomp_mode(),
        }

    assert run_filtered(seccomp, body) == {
        "mkdir": errno.ENOSYS,
        "rmdir": errno.EPERM,
        "getpid": True,
        "mode": 2,
    }
    # Compiling loaded nothing into this process.
    assert seccomp_mode() == 0
    assert not os.path.exists(os.path.join(tmp_path, "d"))


@needs_root
def test_errno_default_with_allow_list(tmp_path: os.PathLike[str]) -> None:
    # What the child itself needs after loading: the body, JSON, the pipe, exit.
    needed = [
        "getpid", "write", "read", "close", "exit", "exit_group", "brk", "mmap",
        "munmap", "mremap", "madvise", "futex", "rt_sigaction", "rt_sigprocmask",
        "rt_sigreturn", "sigaltstack", "getrandom", "fstat", "newfstatat", "lseek",
    ]  # fmt: skip
    seccomp = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EACCES,
        "syscalls": [
            rule(needed, "SCMP_ACT_ALLOW"),
            # Equal to the default action: skipped.
            rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=errno.EACCES),
        ],
    }

    def body() -> object:
        return {
            "mkdir": errno_of(lambda: os.mkdir(os.path.join(tmp_path, "d"))),
            "open": errno_of(lambda: os.open(os.devnull, os.O_RDONLY)),
            "getpid": os.getpid() > 0,
        }

    assert run_filtered(seccomp, body) == {
        "mkdir": errno.EACCES,
        "open": errno.EACCES,
        "getpid": True,
    }


@needs_root
def test_argument_conditions() -> None:
    """Every operator, AND within a rule, OR for repeated indexes (as runc)."""
    who = 424242  # no process runs as this uid, pgid: unfiltered calls fail ESRCH
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            # getpriority(PRIO_USER, who): two conditions on different arguments, both must match.
            rule(
                ["getpriority"],
                "SCMP_ACT_ERRNO",
                errnoRet=MARK,
                args=[arg(0, "SCMP_CMP_EQ", os.PRIO_USER), arg(1, "SCMP_CMP_GE", who)],
            ),
            # getpriority(PRIO_PGRP, who): (who & 0xff00) == 0x6700
            rule(
                ["getpriority"],
                "SCMP_ACT_ERRNO",
                errnoRet=MARK,
                args=[
                    arg(0, "SCMP_CMP_EQ", os.PRIO_PGRP),
                    arg(1, "SCMP_CMP_MASKED_EQ", 0xFF00, 0x6700),
                ],
            ),
            # Two conditions on one argument: either matches.
            rule(
                ["setpriority"],
                "SCMP_ACT_ERRNO",
                errnoRet=MARK,
                args=[arg(1, "SCMP_CMP_LT", 10), arg(1, "SCMP_CMP_GT", who)],
            ),
        ],
    }
    for op, blocked in {
        "SCMP_CMP_NE": {who - 1, who + 1},
        "SCMP_CMP_LT": {who - 1},
        "SCMP_CMP_LE": {who - 1, who},
        "SCMP_CMP_EQ": {who},
        "SCMP_CMP_GE": {who, who + 1},
        "SCMP_CMP_GT": {who + 1},
    }.items():
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                rule(["getpriority"], "SCMP_ACT_ERRNO", errnoRet=MARK, args=[arg(1, op, who)])
            ],
        }

        def probe() -> object:
            return [
                w for w in (who - 1, who, who + 1) if getpriority_errno(os.PRIO_USER, w) == MARK
            ]

        assert set(run_filtered(profile, probe)) == blocked, op

    def body() -> object:
        return {
            "user_match": errno_of(lambda: os.getpriority(os.PRIO_USER, who)),
            "user_below": errno_of(lambda: os.getpriority(os.PRIO_USER, who - 1)),
            "pgrp_masked": errno_of(lambda: os.getpriority(os.PRIO_PGRP, 0x1267AB)),
            "pgrp_unmasked": errno_of(lambda: os.getpriority(os.PRIO_PGRP, 0x1268AB)),
            "set_low": errno_of(lambda: os.setpriority(os.PRIO_PGRP, 5, 0)),
            "set_high": errno_of(lambda: os.setpriority(os.PRIO_PGRP, who + 1, 0)),
            "set_between": errno_of(lambda: os.setpriority(os.PRIO_PGRP, who, 0)),
        }

    assert run_filtered(seccomp, body) == {
        "user_match": MARK,
        "user_below": errno.ESRCH,
        "pgrp_masked": MARK,
        "pgrp_unmasked": errno.ESRCH,
        "set_low": MARK,
        "set_high": MARK,
        "set_between": errno.ESRCH,
    }


@needs_root
@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"]
)
def test_fatal_actions_end_with_sigsys(action: str) -> None:
    seccomp_filter = compile_filter(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["getppid"], action)]}
    )

    def body() -> object:
        seccomp_filter.load()
        return os.getppid()

    status, result = in_child(body)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, result)


@needs_root
def test_trace_without_tracer_and_log(tmp_path: os.PathLike[str]) -> None:
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG"),
            rule(["rmdir"], "SCMP_ACT_TRACE"),
        ],
    }
    target = os.path.join(tmp_path, "d")

    def body() -> object:
        return {
            "mkdir": errno_of(lambda: os.mkdir(target)),
            "rmdir": errno_of(lambda: os.rmdir(target)),
        }

    # seccomp(2): SECCOMP_RET_TRACE with no tracer attached fails the call with ENOSYS.
    assert run_filtered(seccomp, body) == {"mkdir": 0, "rmdir": errno.ENOSYS}


@needs_root
@pytest.mark.parametrize(
    "flags",
    [
        None,
        [],
        ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    ],
)
def test_flags(flags: list[str] | None) -> None:
    seccomp: dict[str, object] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["getppid", "mkdir"], "SCMP_ACT_ERRNO", errnoRet=MARK)],
    }
    if flags is not None:
        seccomp["flags"] = flags
    assert run_filtered(seccomp, lambda: errno_of(lambda: os.mkdir("/"))) == MARK


@needs_root
def test_architectures() -> None:
    archs = {
        "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    }.get(os.uname().machine)
    if archs is None:
        pytest.skip("no architecture list for this machine")
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": archs,
        # socketcall and _llseek exist only on the 32-bit architectures.
        "syscalls": [rule(["mkdir", "socketcall", "_llseek"], "SCMP_ACT_ERRNO", errnoRet=MARK)],
    }
    assert run_filtered(seccomp, lambda: errno_of(lambda: os.mkdir("/"))) == MARK


@needs_root
def test_load_does_not_force_no_new_privs() -> None:
    seccomp_filter = compile_filter({"defaultAction": "SCMP_ACT_ALLOW"})

    def body() -> object:
        # Without CAP_SYS_ADMIN the kernel accepts a filter only under
        # no_new_privs; libseccomp would set it by itself unless told not to.
        os.setuid(65534)
        return [errno_of(seccomp_filter.load), seccomp_mode()]

    status, result = in_child(body)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == [errno.EACCES, 0]


@pytest.mark.parametrize(
    ("seccomp", "message"),
    [
        ({}, "linux.seccomp.defaultAction is required"),
        ({"defaultAction": "SCMP_ACT_FOO"}, 'unknown seccomp action "SCMP_ACT_FOO"'),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["mkdir"], "SCMP_ACT_BAR")]},
            'linux.seccomp.syscalls[0].action: unknown seccomp action "SCMP_ACT_BAR"',
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
            'unknown architecture "SCMP_ARCH_VAX"',
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]},
            'unknown architecture "x86_64"',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(0, "SCMP_CMP_XX", 1)])],
            },
            'syscalls[0].args[0]: unknown seccomp operator "SCMP_CMP_XX"',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(6, "SCMP_CMP_EQ", 1)])],
            },
            "syscalls[0].args[0].index must be an integer from 0 to 5, not 6",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(0, "SCMP_CMP_EQ", -1)])],
            },
            "syscalls[0].args[0].value must be an integer",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000},
            "linux.seccomp.defaultErrnoRet must be an integer from 0 to 65535",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule([], "SCMP_ACT_ERRNO")]},
            "syscalls[0].names must be a non-empty list",
        ),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY is not supported"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["mkdir"], "SCMP_ACT_NOTIFY")]},
            "SCMP_ACT_NOTIFY is not supported",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"},
            "listenerPath is not supported",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]},
            'unsupported seccomp flag "SECCOMP_FILTER_FLAG_BOGUS"',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            },
            'unsupported seccomp flag "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"',
        ),
    ],
)
def test_invalid_profiles(seccomp: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(message)) as info:
        compile_filter(seccomp)
    assert "\n" not in str(info.value)


def test_unknown_syscalls_only() -> None:
    # A profile whose names this libseccomp does not know at all still compiles.
    compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [rule(["no_such_syscall", "another_one"], "SCMP_ACT_ALLOW")],
        }
    )
