"""Loading and validating a bundle's config.json (runtime-spec config.md, config-linux.md).

Validation happens in the runtime process before anything is created, so a bad
bundle fails with one line naming the field and leaves nothing behind.
"""

from __future__ import annotations

import os

from moorage import json_codec
from moorage.errors import InvalidParameter, NotFound

NAMESPACE_FLAGS = {
    "pid": 0x20000000, "network": 0x40000000, "mount": 0x00020000, "ipc": 0x08000000,
    "uts": 0x04000000, "user": 0x10000000, "cgroup": 0x02000000,
}
# The file names under /proc/<pid>/ns/ for each namespace type.
NAMESPACE_FILES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup",
}
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


def load(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"config.json not found in bundle {bundle}") from None
    except OSError as err:
        raise InvalidParameter(f"cannot read {path}: {err.strerror}") from None
    return parse(raw, path)


def parse(raw: bytes, path: str) -> dict:
    """A spec from the bytes of the file at `path` (named in the errors), validated."""
    try:
        config = json_codec.loads(raw)
    except ValueError as err:
        raise InvalidParameter(f"{path}: invalid JSON: {err}") from None
    validate(config)
    return config


def _fail(field: str, problem: str) -> InvalidParameter:
    return InvalidParameter(f"config.json: {field}: {problem}")


def _expect(value: object, kind: type | tuple[type, ...], field: str, name: str) -> None:
    # bool is an int in Python, never a valid number in JSON schema terms.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(field, f"must be {name}, got {_shown(value)}")


def _shown(value: object) -> str:
    try:
        return json_codec.dumps(value)[:40]
    except TypeError:
        return type(value).__name__


def _string_list(value: object, field: str) -> None:
    _expect(value, list, field, "an array of strings")
    for i, item in enumerate(value):  # type: ignore[arg-type]
        _expect(item, str, f"{field}[{i}]", "a string")


def validate(config: object) -> None:
    """Raise InvalidParameter naming the first field that breaks the spec."""
    _expect(config, dict, "(top level)", "an object")
    assert isinstance(config, dict)
    _expect(config.get("ociVersion"), str, "ociVersion", "a string")
    root = config.get("root")
    _expect(root, dict, "root", "an object")
    _expect(root.get("path"), str, "root.path", "a string")
    if "readonly" in root:
        _expect(root["readonly"], bool, "root.readonly", "a boolean")
    _validate_process(config.get("process"), "process", require_cwd=True)
    for key in ("hostname", "domainname"):
        if key in config:
            _expect(config[key], str, key, "a string")
            # runc's check: without a UTS namespace of its own the container would
            # rename the host.
            namespaces = (config.get("linux") or {}).get("namespaces") or []
            if config[key] and not any(isinstance(ns, dict) and ns.get("type") == "uts"
                                       for ns in namespaces):
                raise _fail(key, f"unable to set {key} without a private UTS namespace")
    _validate_mounts(config.get("mounts", []))
    _validate_hooks(config.get("hooks", {}))
    if "annotations" in config:
        _expect(config["annotations"], dict, "annotations", "an object")
    _validate_linux(config.get("linux", {}))


def _validate_process(process: object, field: str, *, require_cwd: bool) -> None:
    _expect(process, dict, field, "an object")
    assert isinstance(process, dict)
    args = process.get("args")
    _string_list(args, f"{field}.args")
    if not args:
        raise _fail(f"{field}.args", "must not be empty")
    cwd = process.get("cwd")
    if require_cwd or cwd is not None:
        _expect(cwd, str, f"{field}.cwd", "a string")
        if not cwd.startswith("/"):  # type: ignore[union-attr]
            raise _fail(f"{field}.cwd", f"must be an absolute path, got {cwd!r}")
    if "env" in process:
        _string_list(process["env"], f"{field}.env")
    user = process.get("user", {})
    _expect(user, dict, f"{field}.user", "an object")
    for key in ("uid", "gid", "umask"):
        if key in user:
            _expect(user[key], int, f"{field}.user.{key}", "an integer")
    if "additionalGids" in user:
        _expect(user["additionalGids"], list, f"{field}.user.additionalGids", "an array")
        for gid in user["additionalGids"]:
            _expect(gid, int, f"{field}.user.additionalGids", "an array of integers")
    for key in ("terminal", "noNewPrivileges"):
        if key in process:
            _expect(process[key], bool, f"{field}.{key}", "a boolean")
    caps = process.get("capabilities", {})
    _expect(caps, dict, f"{field}.capabilities", "an object")
    for key, names in caps.items():
        _string_list(names, f"{field}.capabilities.{key}")
    for i, rlimit in enumerate(process.get("rlimits", [])):
        where = f"{field}.rlimits[{i}]"
        _expect(rlimit, dict, where, "an object")
        if rlimit.get("type") not in RLIMITS:
            raise _fail(f"{where}.type", f"unknown rlimit {rlimit.get('type')!r}")
        for key in ("soft", "hard"):
            _expect(rlimit.get(key), int, f"{where}.{key}", "an integer")
    if "oomScoreAdj" in process:
        _expect(process["oomScoreAdj"], int, f"{field}.oomScoreAdj", "an integer")


def validate_process(process: object) -> None:
    """Validate a process.json given to `exec --process`."""
    _validate_process(process, "process", require_cwd=False)


def _validate_mounts(mounts: object) -> None:
    _expect(mounts, list, "mounts", "an array")
    for i, mount in enumerate(mounts):  # type: ignore[arg-type]
        where = f"mounts[{i}]"
        _expect(mount, dict, where, "an object")
        dest = mount.get("destination")
        _expect(dest, str, f"{where}.destination", "a string")
        if not dest.startswith("/"):
            raise _fail(f"{where}.destination", f"must be an absolute path, got {dest!r}")
        for key in ("type", "source"):
            if key in mount:
                _expect(mount[key], str, f"{where}.{key}", "a string")
        if "options" in mount:
            _string_list(mount["options"], f"{where}.options")


def _validate_hooks(hooks: object) -> None:
    _expect(hooks, dict, "hooks", "an object")
    for name, entries in hooks.items():  # type: ignore[union-attr]
        if name not in HOOK_NAMES:
            raise _fail(f"hooks.{name}", "unknown hook")
        _expect(entries, list, f"hooks.{name}", "an array")
        for i, hook in enumerate(entries):
            where = f"hooks.{name}[{i}]"
            _expect(hook, dict, where, "an object")
            _expect(hook.get("path"), str, f"{where}.path", "a string")
            if "args" in hook:
                _string_list(hook["args"], f"{where}.args")
            if "env" in hook:
                _string_list(hook["env"], f"{where}.env")
            if "timeout" in hook:
                _expect(hook["timeout"], int, f"{where}.timeout", "an integer")
                if hook["timeout"] <= 0:
                    raise _fail(f"{where}.timeout", "must be positive")


def _validate_linux(linux: object) -> None:
    _expect(linux, dict, "linux", "an object")
    assert isinstance(linux, dict)
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        where = f"linux.namespaces[{i}]"
        _expect(ns, dict, where, "an object")
        kind = ns.get("type")
        if kind not in NAMESPACE_FLAGS:
            raise _fail(f"{where}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise _fail(f"{where}.type", f"namespace {kind!r} listed twice")
        seen.add(kind)
        if "path" in ns:
            _expect(ns["path"], str, f"{where}.path", "a string")
    for key in ("uidMappings", "gidMappings"):
        mappings = linux.get(key, [])
        _expect(mappings, list, f"linux.{key}", "an array")
        for j, mapping in enumerate(mappings):
            for part in ("containerID", "hostID", "size"):
                _expect(mapping.get(part) if isinstance(mapping, dict) else None, int,
                        f"linux.{key}[{j}].{part}", "an integer")
        if mappings and "user" not in seen:
            raise _fail(f"linux.{key}", "requires a user namespace")
    for key in ("maskedPaths", "readonlyPaths"):
        if key in linux:
            _string_list(linux[key], f"linux.{key}")
            if linux[key] and "mount" not in seen:
                # Masking over the caller's own /proc and /sys would hit the host (runc's words).
                raise _fail(f"linux.{key}",
                            "unable to restrict sys entries without a private MNT namespace")
    sysctl = linux.get("sysctl", {})
    _expect(sysctl, dict, "linux.sysctl", "an object")
    for name, value in sysctl.items():
        _expect(value, str, f"linux.sysctl.{name}", "a string")
        _check_sysctl_namespaced(name, seen)
    for key in ("resources", "seccomp"):
        if key in linux:
            _expect(linux[key], dict, f"linux.{key}", "an object")
    if "cgroupsPath" in linux:
        _expect(linux["cgroupsPath"], str, "linux.cgroupsPath", "a string")
    if "rootfsPropagation" in linux and linux["rootfsPropagation"] not in (
            "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
            "runbindable"):
        raise _fail("linux.rootfsPropagation", f"unknown value {linux['rootfsPropagation']!r}")


def _check_sysctl_namespaced(name: str, namespaces: set[str]) -> None:
    """Refuse a sysctl that would change the host, as runc's validator does."""
    ipc = name in ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                   "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                   "kernel.shm_rmid_forced") or name.startswith("fs.mqueue.")
    if ipc and "ipc" in namespaces:
        return
    if name.startswith("net.") and "network" in namespaces:
        return
    if name in ("kernel.hostname", "kernel.domainname") and "uts" in namespaces:
        return
    raise _fail(f"linux.sysctl.{name}", "not in a separate kernel namespace")


def rootfs_path(bundle: str, config: dict) -> str:
    path = config["root"]["path"]
    rootfs = os.path.realpath(path if path.startswith("/") else os.path.join(bundle, path))
    if not os.path.isdir(rootfs):
        raise NotFound(f"rootfs ({rootfs}) does not exist")
    return rootfs
