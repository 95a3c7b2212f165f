"""What a RUN step runs, mounts and joins: heredoc scripts, BuildKit's ``RUN --network``
and ``RUN --mount``
(type=cache kept between builds under the builder's directory, type=bind of the
context read-only, type=tmpfs); type=secret and type=ssh need a client session
moorage does not have, and are refused."""

from __future__ import annotations

import hashlib
import os
import posixpath

from moorage.build.dockerfile import Instruction, error
from moorage.errors import InvalidParameter
from moorage.fsutil import in_scope
from moorage.model.config import Mount, TmpfsOptions


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


def run_mounts(inst: Instruction, context_root: str, cache_root: str) -> tuple[Mount, ...]:
    specs = [s for s in inst.flags.get("mount", "").split("\n") if s]
    mounts = []
    for spec in specs:
        fields = _fields(spec, inst.line)
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
            if fields.get("from"):
                raise InvalidParameter("RUN --mount=type=bind,from= is not supported by "
                                       "moorage's builder yet")
            source = in_scope(context_root, fields.get("source") or fields.get("src") or "/")
            writable = fields.get("rw", fields.get("readwrite", "false")) == "true"
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
