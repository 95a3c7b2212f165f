"""What a RUN step runs, mounts and joins: heredoc scripts, BuildKit's ``RUN --network``
and ``RUN --mount`` (type=cache kept between builds under the builder's directory,
type=bind of the context or, with from=, of a stage or image, read-only; type=tmpfs);
type=secret and type=ssh need a client session moorage does not have, and are refused."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat

from moorage.build.dockerfile import Instruction, error
from moorage.errors import InvalidParameter
from moorage.fsutil import in_scope
from moorage.linux import libc
from moorage.model.config import Mount, TmpfsOptions

_NO_LINKS = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS


def run_command(inst: Instruction, shell: list[str]) -> list[str]:
    if inst.heredocs:
        if inst.args.strip() == f"<<{inst.heredocs[0].name}" and len(inst.heredocs) == 1:
            return [*shell, inst.heredocs[0].body]  # the heredoc is the script
        # A command that reads heredocs: the shell gets them as written.
        return [*shell, inst.args + "\n" + "".join(h.body + h.name + "\n"
                                                    for h in inst.heredocs)]
    exec_form = inst.json_args()
    return exec_form if exec_form is not None else [*shell, inst.args]


def _fields(spec: str, line: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key in ("ro", "readonly", "rw", "readwrite") and not sep:
            value = "true"
        elif not sep:
            raise error(line, f"invalid field '{item}' must be a key=value pair")
        fields[key] = value
    return fields


def _specs(inst: Instruction) -> list[dict[str, str]]:
    return [_fields(s, inst.line) for s in inst.flags.get("mount", "").split("\n") if s]


def bind_stages(inst: Instruction) -> list[str]:
    """The stages or images the step's bind mounts read from (``from=``)."""
    return [f["from"] for f in _specs(inst) if f.get("type", "bind") == "bind" and f.get("from")]


def _bind_source(fields: dict[str, str]) -> str:
    return fields.get("source") or fields.get("src") or "/"


def bound_context(inst: Instruction, context_root: str) -> list[str]:
    """The context paths the step's bind mounts show it: their content keys its cache."""
    return [in_scope(context_root, _bind_source(f)) for f in _specs(inst)
            if f.get("type", "bind") == "bind" and not f.get("from")]


def run_mounts(inst: Instruction, context_root: str, cache_root: str,
               stage_roots: dict[str, str], scratch: str) -> tuple[Mount, ...]:
    """The step's mounts; ``stage_roots``: where each ``from=`` stage or image is mounted
    (a view the step may write to, thrown away after it); ``scratch``: a directory of the
    step's own, where a writable bind of the context gets a copy: as with BuildKit, what
    the step writes there is gone afterwards, and the context stays as received."""
    mounts = []
    for fields in _specs(inst):
        kind = fields.get("type", "bind")
        target = fields.get("target") or fields.get("dst") or fields.get("destination")
        if not target:
            raise InvalidParameter("mount destination (target) is required")
        target = posixpath.normpath(posixpath.join("/", target))
        if kind == "cache":
            key = fields.get("id") or target
            directory = os.path.join(cache_root, hashlib.sha256(key.encode()).hexdigest())
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=int(fields.get("mode", "755"), 8))
                os.chown(directory, int(fields.get("uid", "0")), int(fields.get("gid", "0")))
            mounts.append(Mount(type="bind", source=directory, target=target))
        elif kind == "bind":
            root = stage_roots[fields["from"]] if fields.get("from") else context_root
            writable = fields.get("rw", fields.get("readwrite", "false")) == "true"
            source = in_scope(root, _bind_source(fields))
            if writable and not fields.get("from"):
                source = _scratch_copy(source, os.path.join(scratch, str(len(mounts))))
            mounts.append(Mount(type="bind", source=source, target=target,
                                read_only=not writable))
        elif kind == "tmpfs":
            size = int(fields.get("size", "0") or 0)
            mounts.append(Mount(type="tmpfs", target=target,
                                tmpfs_options=TmpfsOptions(size_bytes=size)))
        else:
            raise InvalidParameter(f"RUN --mount=type={kind} is not supported by moorage's "
                                   "builder (it needs a BuildKit session)")
    return tuple(mounts)


def _scratch_copy(source: str, copy: str) -> str:
    if os.path.isdir(source):
        shutil.copytree(source, copy, symlinks=True)
    else:
        shutil.copy2(source, copy)
    return copy


def drop_file_stubs(upper: str, mounts: tuple[Mount, ...]) -> None:
    """Remove from a RUN step's layer the empty files the runtime made as mount points of
    bound files, as BuildKit does (the directories it made stay, as with BuildKit 20.10).
    The layer is the container's: opened without following any of its links."""
    root = os.open(upper, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for mount in mounts:
            if mount.type != "bind" or not os.path.isfile(mount.source):
                continue
            parent, name = posixpath.split(mount.target.lstrip("/"))
            try:
                directory = libc.openat2(root, parent or ".", os.O_PATH | os.O_DIRECTORY
                                         | os.O_CLOEXEC, _NO_LINKS)
            except OSError:
                continue  # not in the layer: nothing was made there
            try:
                info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_size == 0:
                    os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass
            finally:
                os.close(directory)
    finally:
        os.close(root)


def run_network(inst: Instruction) -> str | None:
    """BuildKit's ``RUN --network``: none, host, or default (the build's own network);
    None when not given."""
    value = inst.flags.get("network")
    if value is None or value == "default":
        return None
    if value not in ("none", "host"):
        raise InvalidParameter(f"unsupported network mode {value!r}: use default, none or "
                               "host")
    return value
