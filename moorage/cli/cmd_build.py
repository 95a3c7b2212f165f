"""moor build and moor builder prune: the context sent as a tar with .dockerignore
applied, the daemon's messages shown as plain lines."""

from __future__ import annotations

import os
import sys

from moorage import json_codec
from moorage.cli.container_flags import RESOURCE_FLAGS, ram_in_bytes, resources
from moorage.cli.flags import BOOL, LIST, STR, Spec, flag
from moorage.cli.output import human_size, prune_report, write
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

# The name the Dockerfile gets in the context when it comes from outside it or stdin.
_STDIN_DOCKERFILE = ".dockerfile.moor-stdin"


def _key_values(items: list[str], what: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise CommandError(f"invalid {what}: {item!r}")
        # --build-arg NAME (no "=") takes the value of the environment variable
        out[key] = value if sep else os.environ.get(key)
    return out


def _dockerfile_name(directory: str, dockerfile: str | None,
                     dockerfile_text: bytes | None) -> tuple[str, bytes | None]:
    """The Dockerfile's name inside the context, and its text when it is not there."""
    name = "Dockerfile"
    if dockerfile_text is None and dockerfile:
        path = os.path.abspath(dockerfile)
        inside = os.path.relpath(path, os.path.abspath(directory))
        if inside.startswith(".."):
            with open(path, "rb") as f:
                dockerfile_text = f.read()
        else:
            name = inside
    if dockerfile_text is not None:
        name = _STDIN_DOCKERFILE
    return name, dockerfile_text


def _stdin_context(dockerfile: str | None) -> tuple[str, bytes]:
    """``moor build -``: stdin is a context tar (maybe compressed), or a Dockerfile alone
    (the docker CLI tells them apart the same way)."""
    from moorage.client.tarbody import archive, bytes_member

    data = sys.stdin.buffer.read()
    compressed = data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00"
    if compressed or (len(data) >= 512 and data[257:262] == b"ustar"):
        return dockerfile or "Dockerfile", data
    return "Dockerfile", b"".join(
        p for p in archive(bytes_member("Dockerfile", data)) if isinstance(p, bytes))


# The classic builder's query parameters for the resource flags it takes.
_BUILD_RESOURCES = (("memory", "Memory"), ("memswap", "MemorySwap"),
                    ("cpushares", "CpuShares"), ("cpuperiod", "CpuPeriod"),
                    ("cpuquota", "CpuQuota"), ("cpusetcpus", "CpusetCpus"),
                    ("cpusetmems", "CpusetMems"))
_BUILD_RESOURCE_FLAGS = tuple(f for f in RESOURCE_FLAGS if f.long in (
    "memory", "memory-swap", "cpu-shares", "cpu-period", "cpu-quota", "cpuset-cpus",
    "cpuset-mems"))


def _ulimit(text: str) -> dict[str, Any]:
    """--ulimit name=soft[:hard] as the API's {"Name", "Soft", "Hard"}."""
    name, _, limits = text.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError:
        raise CommandError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit '
                           "argument") from None


def build(session: Session, opts: Options, args: list[str]) -> int:
    directory = args[0]
    if directory == "-" and opts.file == "-":
        raise CommandError("invalid argument: can't use stdin for both build context and "
                           "dockerfile")
    dockerfile_text = sys.stdin.buffer.read() if opts.file == "-" else None
    if directory != "-" and not os.path.isdir(directory):
        raise CommandError(f'unable to prepare context: path "{directory}" not found')
    from moorage.cli.build_progress import view

    try:
        shown = view(opts.progress or "auto")
        output = None
        if opts.output:
            from moorage.cli.build_output import parse_spec

            output = parse_spec(opts.output)
    except ValueError as err:
        raise CommandError(str(err)) from None
    params: dict[str, Any] = {
        "t": list(opts.tag) or None, "dockerfile": None,
        "buildargs": json_codec.dumps(_key_values(opts.build_arg, "build-arg")),
        "labels": json_codec.dumps(_key_values(opts.label, "label")),
        "target": opts.target or None, "nocache": opts.no_cache or None,
        "pull": opts.pull or None, "q": opts.quiet or None,
        "networkmode": opts.network or None, "rm": "1" if opts.rm else "0",
        "forcerm": opts.force_rm or None,
        "extrahosts": list(opts.add_host) or None, "platform": opts.platform or None,
        "shmsize": ram_in_bytes(opts.shm_size) if opts.shm_size else None,
        "cgroupparent": opts.cgroup_parent or None,
        "cachefrom": json_codec.dumps(list(opts.cache_from)) if opts.cache_from else None,
        "ulimits": json_codec.dumps([_ulimit(u) for u in opts.ulimit]) if opts.ulimit else None,
        **{param: value for param, value in (
            (param, resources(opts).get(field)) for param, field in _BUILD_RESOURCES)
           if value is not None},
    }

    def sent(size: int) -> None:
        if not opts.quiet:
            shown.stream(f"Sending build context to the daemon  {human_size(size, 4)}\n")

    from moorage.client.tarbody import ContextError

    image_id = ""
    try:
        if directory == "-":
            params["dockerfile"], body = _stdin_context(opts.file)
            sent(len(body))
            messages = session.client.stream_json(
                "POST", "/build", params, chunks=iter((body,)),
                headers={"Content-Type": "application/x-tar"})
        else:
            from moorage.client import contextsync

            name, text = _dockerfile_name(directory, None if opts.file == "-" else opts.file,
                                          dockerfile_text)
            params["dockerfile"] = name
            messages = contextsync.build(session.client, params, directory, name, text, sent)
        for message in messages:
            if message.get("error"):
                detail = message.get("errorDetail") or {}
                # The docker CLI exits with a failed RUN's code.
                raise CommandError(message["error"], detail.get("code") or 1)
            if "aux" in message:
                image_id = (message["aux"] or {}).get("ID", image_id)
                continue
            if opts.quiet and message.get("stream", "").startswith("sha256:"):
                image_id = message["stream"].strip()  # a quiet build's only line (no aux)
            elif not opts.quiet and message.get("stream"):
                shown.stream(message["stream"])
    except ContextError as err:
        raise CommandError(str(err)) from None
    if opts.quiet:
        write(image_id + "\n")
    else:
        shown.done()
    if opts.iidfile:
        with open(opts.iidfile, "w", encoding="utf-8") as f:
            f.write(image_id)
    if output is not None:
        from moorage.cli.build_output import export

        export(session, image_id, *output)
    return 0


def builder_prune(session: Session, opts: Options, _args: list[str]) -> int:
    if not opts.force:
        raise CommandError("builder prune asks for confirmation: use -f/--force")
    report = session.client.post("/build/prune", {"all": opts.all or None})
    write(prune_report("Deleted build cache objects:", report.get("CachesDeleted") or [],
                       report.get("SpaceReclaimed") or 0))
    return 0


SPECS = {
    "build": Spec("[OPTIONS] PATH | URL | -", build, (
        *_BUILD_RESOURCE_FLAGS,
        flag("add-host", LIST, "Add a custom host-to-IP mapping (host:ip)"),
        flag("build-arg", LIST, "Set build-time variables"),
        flag("cache-from", LIST, "Images to consider as cache sources"),
        flag("cgroup-parent", STR, "Set the parent cgroup for the \"RUN\" instructions during "
                                   "build"),
        flag("f|file", STR, "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
        flag("force-rm", BOOL, "Always remove intermediate containers"),
        flag("iidfile", STR, "Write the image ID to the file"),
        flag("label", LIST, "Set metadata for an image"),
        flag("network", STR, "Set the networking mode for the RUN instructions during build"),
        flag("no-cache", BOOL, "Do not use cache when building the image"),
        flag("o|output", STR, "Output destination (format: type=local,dest=path or "
                              "type=tar,dest=file|-)"),
        flag("platform", STR, "Set platform if server is multi-platform capable"),
        flag("progress", STR, "Set type of progress output (auto, plain, tty)", "auto"),
        flag("pull", BOOL, "Always attempt to pull a newer version of the image"),
        flag("q|quiet", BOOL, "Suppress the build output and print image ID on success"),
        flag("rm", BOOL, "Remove intermediate containers after a successful build", True),
        flag("shm-size", STR, "Size of \"/dev/shm\""),
        flag("ulimit", LIST, "Ulimit options"),
        flag("t|tag", LIST, "Name and optionally a tag in the 'name:tag' format"),
        flag("target", STR, "Set the target build stage to build.")), min_args=1, max_args=1),
    "builder_prune": Spec("[OPTIONS]", builder_prune, (
        flag("a|all", BOOL, "Remove all unused build cache, not just dangling ones"),
        flag("f|force", BOOL, "Do not prompt for confirmation")), max_args=0),
}
