"""images, pull, push, tag, rmi, save, load, import, history, image inspect/prune, login."""

from __future__ import annotations

import sys

from moorage.cli.common import FILTER, FORMAT, confirmed, filters, for_each, inspect_each
from moorage.cli.flags import BOOL, LIST, STR, Spec, flag
from moorage.cli.output import (
    human_size,
    prune_report,
    render,
    save_stream,
    since,
    write,
)
from moorage.cli.progress import Progress
from moorage.cli.pulling import pull_image
from moorage.cli.session import CommandError
from moorage.client.credentials import auth_header
from moorage.protocol.stringid import short_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"}


def _rows(images: list[dict[str, Any]], trunc: bool) -> list[dict[str, Any]]:
    from moorage.cli.output import go_time

    rows = []
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] or ["<none>:<none>"]
        repo_digests = image.get("RepoDigests") or []
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            digest = next((d.partition("@")[2] for d in repo_digests
                           if d.startswith(repo + "@")), "<none>")
            rows.append({
                "Repository": repo, "Tag": name,
                "ID": short_id(image["Id"]) if trunc else image["Id"],
                "Digest": digest,
                "CreatedSince": since(image.get("Created", 0)),
                "CreatedAt": go_time(image.get("Created", 0)),
                "Size": human_size(image.get("Size", 0)),
                "Containers": str(image.get("Containers", -1)) if image.get(
                    "Containers", -1) >= 0 else "N/A",
            })
    return rows


def images(session: Session, opts: Options, args: list[str]) -> int:
    params = {"all": opts.all, "digests": opts.digests, "filters": filters(opts.filter)}
    if args:
        params["filters"] = {**(params["filters"] or {}), "reference": [args[0]]}
    found = session.client.get("/images/json", params)
    found.sort(key=lambda i: i.get("Created", 0), reverse=True)
    rows = _rows(found, not opts.no_trunc)
    if opts.quiet:  # one line a row, as docker: an image with two tags shows twice
        write("".join(row["ID"] + "\n" for row in rows))
        return 0
    default = DEFAULT.replace("{{.Tag}}", "{{.Tag}}\t{{.Digest}}") if opts.digests else DEFAULT
    write(render(rows, opts.format, default, HEADERS))
    return 0


def pull(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.cli.pulling import fully_qualified, name_only

    reference = args[0]
    if opts.all_tags and not name_only(reference):
        raise CommandError("tag can't be used with --all-tags/-a")
    if not opts.all_tags and name_only(reference) and not opts.quiet:
        write("Using default tag: latest\n")
    pull_image(session, reference, opts.quiet, sys.stdout, all_tags=opts.all_tags)
    write(fully_qualified(reference, opts.all_tags) + "\n")
    return 0


def push(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.cli.pulling import fully_qualified, name_only

    if opts.all_tags and not name_only(args[0]):
        raise CommandError("tag can't be used with --all-tags/-a")
    name, _, tag = args[0].rpartition(":") if ":" in args[0].rsplit("/", 1)[-1] \
        else (args[0], "", "")
    if not tag and not opts.all_tags:
        tag = "latest"  # the engine pushes every tag of a name without one
        if not opts.quiet:
            write("Using default tag: latest\n")
    progress = Progress(sys.stdout)
    for message in session.client.stream_json(
            "POST", f"/images/{name}/push", {"tag": tag or None},
            headers={"X-Registry-Auth": "e30=", **auth_header(args[0])}):
        if not opts.quiet:
            progress.show(message)
        elif message.get("error"):
            raise CommandError(message["error"])
    if opts.quiet:
        write(fully_qualified(f"{name}:{tag}" if tag else name, all_tags=True) + "\n")
    return 0


def tag(session: Session, _opts: Options, args: list[str]) -> int:
    repo, _, name = args[1].rpartition(":") if ":" in args[1].rsplit("/", 1)[-1] \
        else (args[1], "", "latest")
    session.client.post(f"/images/{args[0]}/tag", {"repo": repo, "tag": name})
    return 0


def rmi(session: Session, opts: Options, args: list[str]) -> int:
    def remove(name: str) -> str:
        report = session.client.delete(f"/images/{name}", {"force": opts.force,
                                                           "noprune": opts.no_prune})
        return "\n".join(f"{k}: {v}" for item in report or [] for k, v in item.items())
    return for_each(args, remove)


def save(session: Session, opts: Options, args: list[str]) -> int:
    chunks = session.client.stream_raw("GET", "/images/get", {"names": args})
    save_stream(chunks, opts.output)
    return 0


def _file_chunks(path: str | None) -> Any:
    """The file (or stdin) in pieces; opened now, so a missing file is the command's error
    (docker's words) and not a broken request."""
    try:
        source = open(path, "rb") if path and path != "-" else sys.stdin.buffer  # noqa: SIM115
    except OSError as err:
        raise CommandError(f"open {path}: {(err.strerror or str(err)).lower()}") from None

    def chunks() -> Any:
        try:
            while data := source.read(1 << 20):
                yield data
        finally:
            if source is not sys.stdin.buffer:
                source.close()
    return chunks()


def load(session: Session, opts: Options, _args: list[str]) -> int:
    if not opts.input and sys.stdin.isatty():
        raise CommandError("requested load from stdin, but stdin is empty")
    progress = Progress(sys.stdout)
    # dockerd's default is quiet: progress is asked for explicitly, and only for a terminal
    quiet = "1" if opts.quiet or not progress.tty else "0"
    for message in session.client.stream_json(
            "POST", "/images/load", {"quiet": quiet},
            chunks=_file_chunks(opts.input), headers={"Content-Type": "application/x-tar"}):
        progress.show(message)
    return 0


def import_(session: Session, opts: Options, args: list[str]) -> int:
    repo, _, name = (args[1].rpartition(":") if ":" in args[1].rsplit("/", 1)[-1]
                     else (args[1], "", "")) if len(args) > 1 else ("", "", "")
    params = {"fromSrc": "-", "repo": repo or None, "tag": name or None,
              "message": opts.message, "changes": None}
    last: dict[str, Any] = {}
    for message in session.client.stream_json("POST", "/images/create", params,
                                              chunks=_file_chunks(args[0])):
        if message.get("error"):
            raise CommandError(message["error"])
        last = message
    write(str(last.get("status", "")).strip() + "\n")
    return 0


_HISTORY = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
_HISTORY_NOT_HUMAN = _HISTORY.replace("CreatedSince", "CreatedAt")
_HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                    "CreatedBy": "CREATED BY"}


def history(session: Session, opts: Options, args: list[str]) -> int:
    """The docker CLI's history formatter: -H=false prints RFC 3339 times and byte counts."""
    import time

    from moorage.cli.cmd_ps import Row

    rows = []
    for e in session.client.get(f"/images/{args[0]}/history"):
        created = e.get("Created", 0)
        rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))
        rfc3339 = rfc3339[:-5] + ("Z" if rfc3339.endswith("+0000")
                                  else f"{rfc3339[-5:-2]}:{rfc3339[-2:]}")
        created_by = e.get("CreatedBy", "").replace("\t", " ")
        if not opts.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(Row({
            "ID": e["Id"] if e["Id"] == "<missing>" or opts.no_trunc else short_id(e["Id"]),
            "CreatedSince": since(created) if opts.human else rfc3339, "CreatedAt": rfc3339,
            "CreatedBy": created_by, "Comment": e.get("Comment", ""),
            "Size": human_size(e.get("Size", 0)) if opts.human else str(e.get("Size", 0))},
            {}))
    write(render(rows, opts.format or ("{{.ID}}" if opts.quiet else None),
                 _HISTORY if opts.human else _HISTORY_NOT_HUMAN, _HISTORY_HEADERS))
    return 0


def inspect(session: Session, opts: Options, args: list[str]) -> int:
    return inspect_each(lambda name: session.client.get(f"/images/{name}/json"), args,
                        opts.format)


def prune(session: Session, opts: Options, _args: list[str]) -> int:
    which = "images without at least one container associated to them" if opts.all \
        else "dangling images"
    if not opts.force and not confirmed(f"This will remove all {which}."):
        return 0
    wanted = filters(opts.filter) or {}
    wanted["dangling"] = ["false" if opts.all else "true"]
    report = session.client.post("/images/prune", {"filters": wanted}) or {}
    write(prune_report("Deleted Images:", report.get("ImagesDeleted") or [],
                       report.get("SpaceReclaimed") or 0))
    return 0


SPECS = {
    "images": Spec("[OPTIONS] [REPOSITORY[:TAG]]", images, (
        flag("a|all", BOOL, "Show all images (default hides intermediate images)"),
        flag("digests", BOOL, "Show digests"), FILTER,
        flag("format", STR, "Format output using a custom template"),
        flag("no-trunc", BOOL, "Don't truncate output"),
        flag("q|quiet", BOOL, "Only show image IDs")), max_args=1),
    "pull": Spec("[OPTIONS] NAME[:TAG|@DIGEST]", pull, (
        flag("a|all-tags", BOOL, "Download all tagged images in the repository"),
        flag("platform", STR, "Set platform if server is multi-platform capable"),
        flag("q|quiet", BOOL, "Suppress verbose output")), min_args=1, max_args=1),
    "push": Spec("[OPTIONS] NAME[:TAG]", push, (
        flag("a|all-tags", BOOL, "Push all tags of an image to the repository"),
        flag("q|quiet", BOOL, "Suppress verbose output"),), min_args=1, max_args=1),
    "tag": Spec("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", tag, min_args=2, max_args=2),
    "rmi": Spec("[OPTIONS] IMAGE [IMAGE...]", rmi, (
        flag("f|force", BOOL, "Force removal of the image"),
        flag("no-prune", BOOL, "Do not delete untagged parents")), min_args=1),
    "save": Spec("[OPTIONS] IMAGE [IMAGE...]", save, (
        flag("o|output", STR, "Write to a file, instead of STDOUT"),), min_args=1),
    "load": Spec("[OPTIONS]", load, (
        flag("i|input", STR, "Read from tar archive file, instead of STDIN"),
        flag("q|quiet", BOOL, "Suppress the load output")), max_args=0),
    "import": Spec("[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", import_, (
        flag("c|change", STR, "Apply Dockerfile instruction to the created image"),
        flag("m|message", STR, "Set commit message for imported image")),
        min_args=1, max_args=2),
    "history": Spec("[OPTIONS] IMAGE", history, (
        flag("format", STR, "Format output using a custom template"),
        flag("H|human", BOOL, "Print sizes and dates in human readable format", True),
        flag("no-trunc", BOOL, "Don't truncate output"),
        flag("q|quiet", BOOL, "Only show image IDs")), min_args=1, max_args=1),
    "inspect": Spec("[OPTIONS] IMAGE [IMAGE...]", inspect, (FORMAT,), min_args=1),
    "prune": Spec("[OPTIONS]", prune, (
        flag("a|all", BOOL, "Remove all unused images, not just dangling ones"),
        flag("filter", LIST, "Provide filter values"),
        flag("f|force", BOOL, "Do not prompt for confirmation")), max_args=0),
}
