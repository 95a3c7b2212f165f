"""The OCI ``linux.seccomp`` object as a libseccomp filter.

runtime-spec config-linux.md "Seccomp". The filter is compiled in the runtime
before any fork, so a bad profile fails ``create`` with one clear line, and
the container process only loads it, just before execve. Semantics follow
runc where the spec leaves room (noted at each place).
"""

from __future__ import annotations

import errno

from moorage import json_codec
from moorage.errors import InvalidParameter
from moorage.linux import seccomp as scmp

_ACTIONS = {
    # SCMP_ACT_KILL is the historical name of KILL_THREAD (seccomp.h).
    "SCMP_ACT_KILL": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": scmp.ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": scmp.ACT_TRAP,
    "SCMP_ACT_ERRNO": scmp.ACT_ERRNO,
    "SCMP_ACT_TRACE": scmp.ACT_TRACE,
    "SCMP_ACT_ALLOW": scmp.ACT_ALLOW,
    "SCMP_ACT_LOG": scmp.ACT_LOG,
}

_OPERATORS = {
    "SCMP_CMP_NE": scmp.CMP_NE,
    "SCMP_CMP_LT": scmp.CMP_LT,
    "SCMP_CMP_LE": scmp.CMP_LE,
    "SCMP_CMP_EQ": scmp.CMP_EQ,
    "SCMP_CMP_GE": scmp.CMP_GE,
    "SCMP_CMP_GT": scmp.CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.CMP_MASKED_EQ,
}

# The spec's flags that libseccomp 2.5 exposes as filter attributes.
# SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6 and is refused,
# as runc refuses a flag its libseccomp cannot set.
# Each with the seccomp(2) flag seccomp_load would pass for it.
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (scmp.ATTR_CTL_TSYNC, scmp.FILTER_FLAG_TSYNC),
    "SECCOMP_FILTER_FLAG_LOG": (scmp.ATTR_CTL_LOG, scmp.FILTER_FLAG_LOG),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (scmp.ATTR_CTL_SSB, scmp.FILTER_FLAG_SPEC_ALLOW),
}

# Linux syscalls take at most six arguments.
_MAX_ARGS = 6

# runc turns on libseccomp's binary-tree optimization above this many rules;
# libseccomp <= 2.5.4 misbehaves with it on an empty rule set.
_OPTIMIZE_ABOVE = 32

_WHERE = "linux.seccomp"

# A rule's conditions: (argument index, CMP_*, datum_a, datum_b), all must match.
_Conditions = list[tuple[int, int, int, int]]


# Programs by profile. A process that runs many containers (the shims' zygote
# compiles each bundle's profile before it forks) builds each profile once:
# rule_add and libseccomp's BPF generation cost ~7 and ~14 ms for Docker's
# default profile here, on every container start without the cache.
_CACHE_SIZE = 8
_compiled: dict[str, SeccompFilter] = {}


class SeccompFilter:
    """A compiled, not yet loaded filter: libseccomp's BPF program and the load flags."""

    __slots__ = ("_flags", "_program")

    def __init__(self, program: bytes, flags: int) -> None:
        self._program = program
        self._flags = flags

    def load(self) -> None:
        """Install the filter in the calling thread.

        Called in the container process just before execve. The filter does
        not set no_new_privs (the runtime applies ``process.noNewPrivileges``
        itself), so without it the caller needs CAP_SYS_ADMIN. Raises OSError
        from seccomp(2).
        """
        scmp.load_program(self._program, self._flags)


def compile_filter(seccomp: dict[str, object]) -> SeccompFilter:
    """compile_filter_uncached, remembered for the profile (see _compiled)."""
    key = json_codec.dumps(seccomp)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = compile_filter_uncached(seccomp)
        if len(_compiled) >= _CACHE_SIZE:
            del _compiled[next(iter(_compiled))]
        _compiled[key] = compiled
    return compiled


def compile_filter_uncached(seccomp: dict[str, object]) -> SeccompFilter:
    """Validate ``linux.seccomp`` and build its filter without loading it.

    Raises InvalidParameter with one line naming the problem: an unknown
    action, architecture, operator or flag, a bad argument index or value, or
    a feature moor-runtime does not support (SCMP_ACT_NOTIFY, listenerPath).
    Syscall names this libseccomp does not know are skipped, as runc does: a
    profile lists calls that may not exist on this kernel or architecture.
    """
    if seccomp.get("listenerPath"):
        raise InvalidParameter(
            f"{_WHERE}.listenerPath is not supported: moor-runtime has no seccomp agent support"
        )
    default = _action(
        seccomp.get("defaultAction"),
        seccomp.get("defaultErrnoRet"),
        f"{_WHERE}.defaultAction",
        f"{_WHERE}.defaultErrnoRet",
    )
    architectures = _list(seccomp.get("architectures"), f"{_WHERE}.architectures")
    flags = seccomp.get("flags")
    for flag in _list(flags, f"{_WHERE}.flags"):
        if flag not in _FLAGS:
            raise InvalidParameter(f'{_WHERE}.flags: unsupported seccomp flag "{flag}"')
    rules = [
        _rule(rule, f"{_WHERE}.syscalls[{i}]")
        for i, rule in enumerate(_list(seccomp.get("syscalls"), f"{_WHERE}.syscalls"))
    ]

    context = scmp.FilterContext(default)
    try:
        for arch in architectures:
            context.arch_add(_arch_token(arch))
        # The runtime applies process.noNewPrivileges itself, as runc does;
        # loading the filter must not force it.
        context.attr_set(scmp.ATTR_CTL_NNP, 0)
        # Make seccomp_load report the kernel's errno instead of ECANCELED.
        context.attr_set(scmp.ATTR_API_SYSRAWRC, 1)
        if sum(len(names) for _, names, _ in rules) > _OPTIMIZE_ABOVE:
            context.attr_set(scmp.ATTR_CTL_OPTIMIZE, 2)
        load_flags = _set_flags(context, flags)
        for action, names, groups in rules:
            # libseccomp rejects a rule whose action is the default one (EACCES);
            # runc skips such a rule silently.
            if action == default:
                continue
            for name in names:
                _add_rules(context, action, name, groups)
        return SeccompFilter(context.export_bpf(), load_flags)
    finally:
        context.release()


def _arch_token(arch: object) -> int:
    # The spec's names are libseccomp's own, upper-cased and prefixed.
    token = 0
    if isinstance(arch, str) and arch.startswith("SCMP_ARCH_"):
        token = scmp.arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower())
    if not token:
        raise InvalidParameter(f'{_WHERE}.architectures: unknown architecture "{arch}"')
    return token


def _set_flags(context: scmp.FilterContext, flags: object) -> int:
    """Set the profile's flags as attributes (libseccomp checks the kernel supports
    them); the seccomp(2) flags to load with."""
    if flags is None:
        # runc (since 1.2) sets SPEC_ALLOW when the profile has no "flags" at
        # all, so seccomp does not force the costly speculative store bypass
        # mitigation; a kernel without the flag keeps the mitigation.
        try:
            context.attr_set(scmp.ATTR_CTL_SSB, 1)
        except OSError:
            return 0
        return scmp.FILTER_FLAG_SPEC_ALLOW
    load_flags = 0
    for flag in _list(flags, f"{_WHERE}.flags"):
        attribute, load_flag = _FLAGS[flag]
        try:
            context.attr_set(attribute, 1)
        except OSError as exc:
            raise InvalidParameter(
                f'{_WHERE}.flags: seccomp flag "{flag}" is not supported here: {exc.strerror}'
            ) from None
        load_flags |= load_flag
    return load_flags


def _add_rules(
    context: scmp.FilterContext,
    action: int,
    name: str,
    groups: list[_Conditions],
) -> None:
    number = scmp.syscall_resolve_name(name)
    if number == scmp.NR_SCMP_ERROR:
        return
    for conditions in groups:
        try:
            context.rule_add(action, number, conditions)
        except OSError as exc:
            raise InvalidParameter(
                f'{_WHERE}: cannot add rule for syscall "{name}": {exc.strerror}'
            ) from None


def _action(name: object, errno_ret: object, where: str, errno_where: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise InvalidParameter(
            f"{where}: SCMP_ACT_NOTIFY is not supported: moor-runtime has no seccomp agent support"
        )
    action = _ACTIONS.get(name) if isinstance(name, str) else None
    if action is None:
        if name is None:
            raise InvalidParameter(f"{where} is required")
        raise InvalidParameter(f'{where}: unknown seccomp action "{name}"')
    if action not in (scmp.ACT_ERRNO, scmp.ACT_TRACE):
        # runc ignores errnoRet on actions that carry no data.
        return action
    if errno_ret is None:
        # runc's default for both ERRNO and TRACE.
        return action | errno.EPERM
    return action | _uint(errno_ret, scmp.ACT_DATA_MASK, errno_where)


def _rule(rule: object, where: str) -> tuple[int, list[str], list[_Conditions]]:
    if not isinstance(rule, dict):
        raise InvalidParameter(f"{where} must be an object")
    names = rule.get("names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise InvalidParameter(f"{where}.names must be a non-empty list of syscall names")
    action = _action(
        rule.get("action"), rule.get("errnoRet"), f"{where}.action", f"{where}.errnoRet"
    )
    args = _list(rule.get("args"), f"{where}.args")
    conditions = [_condition(arg, f"{where}.args[{j}]") for j, arg in enumerate(args)]
    # Conditions in one rule must all match. runc reads several conditions on
    # the same argument as alternatives instead, one rule each, because
    # libseccomp refuses two comparisons of one argument in a rule (EINVAL).
    indexes = [cond[0] for cond in conditions]
    if len(set(indexes)) < len(indexes):
        return action, names, [[cond] for cond in conditions]
    return action, names, [conditions]


def _condition(arg: object, where: str) -> tuple[int, int, int, int]:
    if not isinstance(arg, dict):
        raise InvalidParameter(f"{where} must be an object")
    op = arg.get("op")
    operator = _OPERATORS.get(op) if isinstance(op, str) else None
    if operator is None:
        raise InvalidParameter(f'{where}: unknown seccomp operator "{op}"')
    index = _uint(arg.get("index"), _MAX_ARGS - 1, f"{where}.index")
    value = _uint(arg.get("value"), 2**64 - 1, f"{where}.value")
    value_two = _uint(arg.get("valueTwo", 0), 2**64 - 1, f"{where}.valueTwo")
    return index, operator, value, value_two


def _list(value: object, what: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameter(f"{what} must be a list")
    return value


def _uint(value: object, limit: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise InvalidParameter(f"{what} must be an integer from 0 to {limit}, not {value!r}")
    return value
