"""Device rules on cgroup v2: an eBPF program attached to the container's cgroup.

cgroup v2 has no devices.allow/deny files; the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE
program instead (runc: libcontainer/cgroups/devices and ebpf/devicefilter). The OCI rules
are first reduced as the v1 controller would hold them (a default and its exceptions,
`effective`), so a bundle allows the same devices on either version, then compiled to
one straight run of checks, one block an exception, with no loop for the verifier.

The program sees struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
access_type being (access << 16) | type.
"""

from __future__ import annotations

import os

from moorage.errors import SystemFailure
from moorage.linux import libc
from moorage.runtime.cgroups.convert import parse_device_rule

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see fs.py)
if TYPE_CHECKING:
    from typing import Any

# linux/bpf.h: BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*
_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}
_ALL_ACCESS = 7

# (type, major or None for every one, minor or None, access bits)
DeviceException = tuple[str, int | None, int | None, int]


def effective(rules: list[dict[str, Any]]) -> tuple[bool, list[DeviceException]]:
    """(allowed by default, exceptions) after `rules`, as the v1 controller keeps them.

    An 'a' rule sets the default and drops every exception; a rule that agrees with the
    default takes its access away from the exception with the same type and numbers;
    one that disagrees adds its access to that exception.
    """
    default_allow = True  # a new cgroup v2 directory has no program: every device
    exceptions: dict[tuple[str, int | None, int | None], int] = {}
    for rule in rules:
        allow, kind, major, minor, access = parse_device_rule(rule)
        bits = sum(_ACCESS[letter] for letter in set(access))
        if kind == "a":
            default_allow = allow
            exceptions.clear()
            continue
        key = (kind, major, minor)
        if allow == default_allow:
            left = exceptions.pop(key, 0) & ~bits
            if left:
                exceptions[key] = left
        else:
            exceptions[key] = exceptions.get(key, 0) | bits
    return default_allow, [(*key, bits) for key, bits in exceptions.items()]


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return (code.to_bytes(1, "little") + ((src << 4) | dst).to_bytes(1, "little")
            + off.to_bytes(2, "little", signed=True) + imm.to_bytes(4, "little", signed=True))


# Opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_W = 0x61      # dst = *(u32 *)(src + off)
_AND32_K = 0x54    # dst &= imm (32-bit)
_RSH32_K = 0x74    # dst >>= imm (32-bit)
_MOV32_X = 0xBC    # dst = src (32-bit)
_MOV64_K = 0xB7    # dst = imm
_JNE_K = 0x55      # if dst != imm: pc += off
_JNE_X = 0x5D      # if dst != src: pc += off
_JEQ_K = 0x15      # if dst == imm: pc += off
_EXIT = 0x95
_R0, _R1, _R2, _R3, _R4, _R5 = range(6)

# r2 = type, r3 = access, r4 = major, r5 = minor; r1 (the context) is free afterwards.
_PROLOGUE = b"".join((
    _insn(_LDX_W, _R2, _R1, 0), _insn(_AND32_K, _R2, imm=0xFFFF),
    _insn(_LDX_W, _R3, _R1, 0), _insn(_RSH32_K, _R3, imm=16),
    _insn(_LDX_W, _R4, _R1, 4), _insn(_LDX_W, _R5, _R1, 8),
))


def program(rules: list[dict[str, Any]]) -> bytes:
    """The eBPF instructions that answer as `rules` would on cgroup v1."""
    default_allow, exceptions = effective(rules)
    verdict = 0 if default_allow else 1
    blocks = [_PROLOGUE]
    for kind, major, minor, bits in exceptions:
        # Each check is (instructions before its jump, opcode, dst, src, imm); a failed
        # one jumps past the block's end, to the next exception.
        checks: list[tuple[bytes, int, int, int, int]] = [(b"", _JNE_K, _R2, 0, _TYPES[kind])]
        if major is not None:
            checks.append((b"", _JNE_K, _R4, 0, major))
        if minor is not None:
            checks.append((b"", _JNE_K, _R5, 0, minor))
        if bits != _ALL_ACCESS:
            masked = _insn(_MOV32_X, _R1, _R3) + _insn(_AND32_K, _R1, imm=bits)
            # An allowing exception must cover all the access asked for; a denying one
            # refuses as soon as it covers any of it (v1's partial match).
            checks.append((masked, _JEQ_K, _R1, 0, 0) if default_allow
                          else (masked, _JNE_X, _R1, _R3, 0))
        tail = _insn(_MOV64_K, _R0, imm=verdict) + _insn(_EXIT)
        length = sum(len(before) // 8 + 1 for before, *_ in checks) + len(tail) // 8
        block = b""
        for before, code, dst, src, imm in checks:
            block += before
            block += _insn(code, dst, src, length - len(block) // 8 - 1, imm)
        blocks.append(block + tail)
    blocks.append(_insn(_MOV64_K, _R0, imm=1 if default_allow else 0) + _insn(_EXIT))
    return b"".join(blocks)


def apply(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    """Attach the program for `rules` to the cgroup, in place of the one set before.

    Attached with BPF_F_ALLOW_MULTI so that the programs of the cgroups above (systemd's
    for its slices) still run: a device must pass every one of them.
    """
    code = program(rules)
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        prog = libc.bpf_prog_load(libc.BPF_PROG_TYPE_CGROUP_DEVICE, code, b"Apache")
        try:
            attached = libc.bpf_prog_query(fd, libc.BPF_CGROUP_DEVICE)
            if len(attached) > 1:
                raise SystemFailure(f"cgroup v2: {cgroup_dir} has {len(attached)} device "
                                    "programs attached; cannot tell which one to replace")
            if not attached:
                libc.bpf_prog_attach(fd, prog, libc.BPF_CGROUP_DEVICE, libc.BPF_F_ALLOW_MULTI)
                return
            old = libc.bpf_prog_get_fd_by_id(attached[0])
            try:
                libc.bpf_prog_attach(fd, prog, libc.BPF_CGROUP_DEVICE,
                                     libc.BPF_F_ALLOW_MULTI | libc.BPF_F_REPLACE, old)
            finally:
                os.close(old)
        finally:
            # The cgroup holds the program; our fd is not needed to keep it.
            os.close(prog)
    except OSError as e:
        raise SystemFailure(f"cgroup v2: cannot apply device rules to {cgroup_dir}: "
                            f"{e.strerror}") from e
    finally:
        os.close(fd)
