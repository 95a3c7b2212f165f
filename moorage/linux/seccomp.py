"""ctypes bindings to libseccomp 2.5 (seccomp.h), loaded on first use.

A process that never builds a filter never opens libseccomp.so.2. libseccomp
reports failures as negative errno values; every wrapper turns them into an
OSError naming the call.
"""

from __future__ import annotations

import ctypes
import errno
import os

from moorage.linux import libc

# Filter actions (seccomp.h). ERRNO and TRACE carry 16 bits of data.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_DATA_MASK = 0x0000FFFF

# enum scmp_compare
CMP_NE = 1
CMP_LT = 2
CMP_LE = 3
CMP_EQ = 4
CMP_GE = 5
CMP_GT = 6
CMP_MASKED_EQ = 7

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9

# seccomp(2) operation and flags (linux/seccomp.h), for loading an exported program.
SECCOMP_SET_MODE_FILTER = 1
FILTER_FLAG_TSYNC = 1
FILTER_FLAG_LOG = 2
FILTER_FLAG_SPEC_ALLOW = 4

# seccomp_syscall_resolve_name() failure value; other negative values are
# libseccomp's pseudo-syscalls (a call that exists on another architecture of
# the filter) and are valid rule targets.
NR_SCMP_ERROR = -1


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: one condition on one syscall argument."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class SockFprog(ctypes.Structure):
    """struct sock_fprog: a classic BPF program, as seccomp(2) takes it."""

    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


# struct sock_filter: u16 code, u8 jt, u8 jf, u32 k.
BPF_INSTRUCTION_SIZE = 8

_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        ctx = ctypes.c_void_p
        for name, restype, argtypes in (
            ("seccomp_init", ctx, (ctypes.c_uint32,)),
            ("seccomp_release", None, (ctx,)),
            ("seccomp_arch_resolve_name", ctypes.c_uint32, (ctypes.c_char_p,)),
            ("seccomp_arch_add", ctypes.c_int, (ctx, ctypes.c_uint32)),
            ("seccomp_attr_set", ctypes.c_int, (ctx, ctypes.c_int, ctypes.c_uint32)),
            ("seccomp_syscall_resolve_name", ctypes.c_int, (ctypes.c_char_p,)),
            (
                "seccomp_rule_add_array",
                ctypes.c_int,
                (ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)),
            ),
            ("seccomp_export_bpf", ctypes.c_int, (ctx, ctypes.c_int)),
        ):
            func = getattr(lib, name)
            func.restype = restype
            func.argtypes = argtypes
        _lib = lib
    return _lib


def _check(rc: int, call: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{call}: {os.strerror(-rc)}")


def arch_resolve_name(name: str) -> int:
    """The architecture token for a libseccomp name ("x86_64"), or 0 if unknown."""
    return int(_library().seccomp_arch_resolve_name(name.encode()))


def syscall_resolve_name(name: str) -> int:
    """The native syscall number (or pseudo-syscall), NR_SCMP_ERROR if unknown."""
    return int(_library().seccomp_syscall_resolve_name(name.encode()))


class FilterContext:
    """An scmp_filter_ctx: plain process memory, so it survives fork."""

    __slots__ = ("_ctx",)

    def __init__(self, default_action: int) -> None:
        ctx = _library().seccomp_init(default_action)
        if not ctx:
            # seccomp_init returns NULL without an errno; an action the
            # library rejects is the only cause that is not out-of-memory.
            raise OSError(
                errno.EINVAL, f"seccomp_init: rejected default action {default_action:#x}"
            )
        self._ctx: int | None = ctx

    def __del__(self) -> None:
        self.release()

    def release(self) -> None:
        if self._ctx is not None:
            _library().seccomp_release(self._ctx)
            self._ctx = None

    def arch_add(self, token: int) -> None:
        """Add an architecture; one already present (the native one) is not an error."""
        rc = _library().seccomp_arch_add(self._ctx, token)
        if rc != -errno.EEXIST:
            _check(rc, "seccomp_arch_add")

    def attr_set(self, attr: int, value: int) -> None:
        _check(_library().seccomp_attr_set(self._ctx, attr, value), "seccomp_attr_set")

    def rule_add(
        self, action: int, syscall: int, conditions: list[tuple[int, int, int, int]]
    ) -> None:
        """Add a rule; conditions are (arg index, CMP_*, datum_a, datum_b), all must match."""
        array = (ArgCmp * len(conditions))(*(ArgCmp(*cond) for cond in conditions))
        rc = _library().seccomp_rule_add_array(self._ctx, action, syscall, len(conditions), array)
        _check(rc, "seccomp_rule_add_array")

    def export_bpf(self) -> bytes:
        """The BPF program seccomp_load would install. libseccomp generates it anew
        on every load or export (~14 ms for Docker's default profile here), so
        the runtime exports it once per profile and loads it with seccomp(2)."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(_library().seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


def load_program(program: bytes, flags: int) -> None:
    """Install an exported BPF program with seccomp(2) in the calling thread.

    Without no_new_privs the caller needs CAP_SYS_ADMIN, as with seccomp_load.
    """
    fprog = SockFprog(len(program) // BPF_INSTRUCTION_SIZE, program)
    libc.seccomp(SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog))
