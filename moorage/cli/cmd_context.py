"""context create/ls/use/inspect/rm/show, in the docker CLI's store (shared with it)."""

from __future__ import annotations

import os
import sys

from moorage.cli.common import FORMAT, template
from moorage.cli.flags import BOOL, STR, Spec, flag
from moorage.cli.output import indented_json, tabulate, write
from moorage.cli.session import CommandError
from moorage.client import contexts
from moorage.client.errors import EndpointError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.cli.flags import Options
    from moorage.cli.session import Session


def _endpoint(opts: Options) -> tuple[str, bool, dict[str, str]] | None:
    """--docker as (host, skip TLS verify, TLS files); --from copies another context's."""
    source = getattr(opts, "from", None)  # create's only
    if source and opts.docker:
        raise CommandError("--docker cannot be used with --from")
    if source:
        return contexts.endpoint_of(source)
    if opts.docker is None:
        return None
    fields = dict(item.partition("=")[::2] for item in opts.docker.split(",") if item)
    host = fields.get("host") or os.environ.get("MOOR_HOST") or os.environ.get(
        "DOCKER_HOST") or contexts.DEFAULT_HOST
    material = {target: fields[key] for key, target in (("ca", "ca.pem"), ("cert", "cert.pem"),
                                                        ("key", "key.pem")) if fields.get(key)}
    return host, fields.get("skip-tls-verify", "false") == "true", material


def create(_session: Session, opts: Options, args: list[str]) -> int:
    endpoint = _endpoint(opts) or contexts.endpoint_of(contexts.current())
    description = opts.description
    source = getattr(opts, "from")
    if description is None and source and source != "default":
        description = contexts.document(source)["Metadata"].get("Description")
    contexts.create(args[0], description or "", *endpoint)
    write(args[0] + "\n")
    sys.stderr.write(f'Successfully created context "{args[0]}"\n')
    return 0


def update(_session: Session, opts: Options, args: list[str]) -> int:
    contexts.update(args[0], opts.description, _endpoint(opts))
    write(args[0] + "\n")
    sys.stderr.write(f'Successfully updated context "{args[0]}"\n')
    return 0


def export(_session: Session, _opts: Options, args: list[str]) -> int:
    data = contexts.export_tar(args[0])
    target = args[1] if len(args) > 1 else f"{args[0]}.dockercontext"
    if target == "-":
        sys.stdout.buffer.write(data)
        return 0
    try:
        with open(target, "xb") as f:
            f.write(data)
    except OSError as err:
        raise CommandError(f"open {target}: {err.strerror.lower()}") from None
    sys.stderr.write(f'Written file "{target}"\n')
    return 0


def import_(_session: Session, _opts: Options, args: list[str]) -> int:
    source = args[1]
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                data = f.read()
    except OSError as err:
        raise CommandError(f"open {source}: {err.strerror.lower()}") from None
    contexts.import_tar(args[0], data)
    write(args[0] + "\n")
    sys.stderr.write(f'Successfully imported context "{args[0]}"\n')
    return 0


def ls(session: Session, opts: Options, _args: list[str]) -> int:
    current = session.options.context or contexts.current()
    docs = [contexts.document(name) for name in contexts.names()]
    if opts.quiet:
        write("".join(d["Name"] + "\n" for d in docs))
        return 0
    if opts.format:
        write("".join(template(opts.format, d) + "\n" for d in docs))
        return 0
    lines = ["NAME\tDESCRIPTION\tDOCKER ENDPOINT\tERROR"]
    for d in docs:
        description = "Current DOCKER_HOST based configuration" if d["Name"] == "default" \
            else d["Metadata"].get("Description", "")
        star = " *" if d["Name"] == current else ""
        lines.append(f"{d['Name']}{star}\t{description}\t{d['Endpoints']['docker']['Host']}\t")
    write(tabulate(lines))
    return 0


def use(_session: Session, _opts: Options, args: list[str]) -> int:
    contexts.use(args[0])
    write(args[0] + "\n")
    sys.stderr.write(f'Current context is now "{args[0]}"\n')
    return 0


def inspect(session: Session, opts: Options, args: list[str]) -> int:
    names = args or [session.options.context or contexts.current()]
    docs = [contexts.document(name) for name in names]
    write("".join(template(opts.format, d) + "\n" for d in docs) if opts.format
          else indented_json(docs) + "\n")
    return 0


def rm(session: Session, opts: Options, args: list[str]) -> int:
    failed = False
    current = session.options.context or contexts.current()
    for name in args:
        try:
            if name == current and name != "default" and not opts.force:
                raise EndpointError(f'context "{name}" is in use, set -f flag to force remove')
            contexts.remove(name)
            write(name + "\n")
        except EndpointError as err:
            sys.stderr.write(f"{err}\n")
            failed = True
    return 1 if failed else 0


def show(session: Session, _opts: Options, _args: list[str]) -> int:
    write((session.options.context or contexts.current()) + "\n")
    return 0


SPECS = {
    "create": Spec("[OPTIONS] CONTEXT", create, (
        flag("description", STR, "Description of the context"),
        flag("docker", STR, "set the docker endpoint"),
        flag("from", STR, "create context from a named context")), min_args=1, max_args=1),
    "ls": Spec("[OPTIONS]", ls, (flag("format", STR, "Format output using a custom template"),
                                 flag("q|quiet", BOOL, "Only show context names")), max_args=0),
    "use": Spec("CONTEXT", use, min_args=1, max_args=1),
    "inspect": Spec("[OPTIONS] [CONTEXT] [CONTEXT...]", inspect, (FORMAT,)),
    "rm": Spec("CONTEXT [CONTEXT...]", rm, (
        flag("f|force", BOOL, "Force the removal of a context in use"),), min_args=1),
    "show": Spec("", show, max_args=0),
    "update": Spec("[OPTIONS] CONTEXT", update, (
        flag("description", STR, "Description of the context"),
        flag("docker", STR, "set the docker endpoint")), min_args=1, max_args=1),
    "export": Spec("[OPTIONS] CONTEXT [FILE|-]", export, min_args=1, max_args=2),
    "import": Spec("CONTEXT FILE|-", import_, min_args=2, max_args=2),
}
