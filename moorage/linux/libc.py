"""ctypes bindings to the few libc calls Python's os module lacks (3.11).

Every wrapper checks the return value and raises OSError carrying errno and
the path or object it was applied to, so callers can report one clear line.
"""

from __future__ import annotations

# _ctypes, not ctypes: ctypes/__init__.py builds its whole type zoo and imports
# struct, ~1.5 ms of every moor-runtime start; these few calls need five types.
import _ctypes
import errno
import os
from _signal import SIGCHLD


class _c_int(_ctypes._SimpleCData):
    _type_ = "i"


class _c_uint32(_ctypes._SimpleCData):
    _type_ = "I"


class _c_ulong(_ctypes._SimpleCData):
    _type_ = "L"


class _c_uint64(_ctypes._SimpleCData):
    _type_ = "Q"


class _Function(_ctypes.CFuncPtr):
    """A C function of libc returning int, with errno saved (ctypes.CDLL's use_errno)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _c_int


class _Libc:
    """The running program's symbols (dlopen(NULL)), as ctypes.CDLL(None)."""

    def __init__(self) -> None:
        self._handle = _ctypes.dlopen(None, os.RTLD_LOCAL)

    def __getattr__(self, name: str) -> _Function:
        function = _Function((name, self))
        setattr(self, name, function)
        return function


_libc = _Libc()

# Syscalls glibc does not wrap, by machine (asm/unistd.h).
_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "openat2": 437,
               "seccomp": 317, "clone3": 435, "bpf": 321},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "openat2": 437,
                "seccomp": 277, "clone3": 435, "bpf": 280},
}
_NR = _SYSCALL_NUMBERS[os.uname().machine]

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# clone(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_INTO_CGROUP = 0x200000000

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), _c_ulong(flags), _b(data)),
           "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", target)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_NR["pivot_root"], _b(new_root), _b(put_old)), "pivot_root", new_root)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, _c_ulong(arg2), _c_ulong(arg3),
                              _c_ulong(arg4), _c_ulong(arg5)), "prctl")


def seccomp(operation: int, flags: int, args: object) -> None:
    """seccomp(2); `args` is a ctypes pointer (a struct sock_fprog for SET_MODE_FILTER)."""
    _check(_libc.syscall(_NR["seccomp"], operation, flags, args), "seccomp")


class _CapHeader(_ctypes.Structure):
    _fields_ = (("version", _c_uint32), ("pid", _c_int))


class _CapData(_ctypes.Structure):
    _fields_ = (("effective", _c_uint32), ("permitted", _c_uint32),
                ("inheritable", _c_uint32))


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_NR["capset"], _ctypes.byref(header), data), "capset")


class _OpenHow(_ctypes.Structure):
    _fields_ = (("flags", _c_uint64), ("mode", _c_uint64), ("resolve", _c_uint64))


RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


# A rename or mount anywhere on the host during a ".." step under RESOLVE_IN_ROOT or
# RESOLVE_BENEATH makes the kernel answer EAGAIN rather than risk an escape; it asks the
# caller to retry. On a busy host (other containers starting) a few tries in a row fail.
_OPENAT2_TRIES = 64


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags, mode, resolve)
    raw = _b(path)
    for _ in range(_OPENAT2_TRIES):
        fd = _libc.syscall(_NR["openat2"], dir_fd, raw, _ctypes.byref(how), _ctypes.sizeof(how))
        if fd >= 0 or _ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(fd, "openat2", path)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


class _CloneArgs(_ctypes.Structure):
    """struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7)."""

    _fields_ = tuple((name, _c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup"))


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(2) whose child starts in the cgroup2 directory open as `cgroup_fd`
    (clone3 with CLONE_INTO_CGROUP): no cgroup.procs write, so no wait for the global
    threadgroup lock's RCU grace period (8-15 ms measured here).

    A raw clone, not os.fork: Python's after-fork hooks do not run in the child, which
    is only sound for a single-threaded caller whose child runs the runtime's own code
    to an exec or os._exit. OSError (ENOSYS before Linux 5.7, EPERM under a seccomp
    filter that refuses clone3) leaves the fallback to the caller.
    """
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=cgroup_fd)
    return _check(_libc.syscall(_NR["clone3"], _ctypes.byref(args), _ctypes.sizeof(args)),
                  "clone3")


# bpf(2) commands, program and attach types, flags (linux/bpf.h)
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_GET_FD_BY_ID = 13
_BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 0x2
BPF_F_REPLACE = 0x4


class _c_char(_ctypes._SimpleCData):
    _type_ = "c"


class _BpfProgLoad(_ctypes.Structure):
    """union bpf_attr for BPF_PROG_LOAD, up to expected_attach_type."""

    _fields_ = (("prog_type", _c_uint32), ("insn_cnt", _c_uint32), ("insns", _c_uint64),
                ("license", _c_uint64), ("log_level", _c_uint32), ("log_size", _c_uint32),
                ("log_buf", _c_uint64), ("kern_version", _c_uint32), ("prog_flags", _c_uint32),
                ("prog_name", _c_uint64 * 2), ("prog_ifindex", _c_uint32),
                ("expected_attach_type", _c_uint32))


class _BpfProgAttach(_ctypes.Structure):
    _fields_ = (("target_fd", _c_uint32), ("attach_bpf_fd", _c_uint32),
                ("attach_type", _c_uint32), ("attach_flags", _c_uint32),
                ("replace_bpf_fd", _c_uint32))


class _BpfProgQuery(_ctypes.Structure):
    _fields_ = (("target_fd", _c_uint32), ("attach_type", _c_uint32),
                ("query_flags", _c_uint32), ("attach_flags", _c_uint32),
                ("prog_ids", _c_uint64), ("prog_cnt", _c_uint32))


def _bpf(command: int, attr: _ctypes.Structure, what: str) -> int:
    return _check(_libc.syscall(_NR["bpf"], command, _ctypes.byref(attr), _ctypes.sizeof(attr)),
                  what)


def bpf_prog_load(prog_type: int, instructions: bytes, license: bytes,
                  expected_attach_type: int = 0) -> int:
    """Load an eBPF program (8-byte instructions); its fd. The verifier's refusal is EINVAL
    or EACCES."""
    code = (_c_char * len(instructions)).from_buffer_copy(instructions)
    licence = (_c_char * (len(license) + 1)).from_buffer_copy(license + b"\0")
    attr = _BpfProgLoad(prog_type=prog_type, insn_cnt=len(instructions) // 8,
                        insns=_ctypes.addressof(code), license=_ctypes.addressof(licence),
                        expected_attach_type=expected_attach_type)
    return _bpf(_BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int,
                    replace_fd: int = 0) -> None:
    _bpf(_BPF_PROG_ATTACH, _BpfProgAttach(target_fd, prog_fd, attach_type, flags, replace_fd),
         "bpf(BPF_PROG_ATTACH)")


def bpf_prog_query(target_fd: int, attach_type: int, most: int = 64) -> list[int]:
    """The ids of the programs attached to `target_fd` itself (not inherited ones)."""
    ids = (_c_uint32 * most)()
    attr = _BpfProgQuery(target_fd=target_fd, attach_type=attach_type,
                         prog_ids=_ctypes.addressof(ids), prog_cnt=most)
    _bpf(_BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    return list(ids[:attr.prog_cnt])


class _BpfGetFdById(_ctypes.Structure):
    _fields_ = (("prog_id", _c_uint32), ("next_id", _c_uint32), ("open_flags", _c_uint32))


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(_BPF_PROG_GET_FD_BY_ID, _BpfGetFdById(prog_id, 0, 0), "bpf(BPF_PROG_GET_FD_BY_ID)")
