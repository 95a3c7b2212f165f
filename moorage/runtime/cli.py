"""`moor-runtime`: an OCI runtime with runc's command line (runc 1.1 flags and exit codes)."""

from __future__ import annotations

import os
import sys

from moorage import __version__, json_codec
from moorage.errors import InvalidParameter, MoorError
from moorage.runtime.args import Command, parse
from moorage.runtime.spec import OCI_VERSION
from moorage.runtime.state import DEFAULT_ROOT

GLOBAL_FLAGS = {"root": "str", "log": "str", "log-format": "str", "debug": "bool",
                "systemd-cgroup": "bool", "cgroup-mode": "str", "version": "bool",
                "help": "bool", "criu": "str", "rootless": "str"}
GLOBAL_ALIASES = {"v": "version", "h": "help"}

_BUNDLE = {"bundle": "str", "pid-file": "str", "console-socket": "str", "preserve-fds": "int",
           "no-pivot": "bool", "no-new-keyring": "bool"}
COMMANDS = {c.name: c for c in (
    Command("create", "create a container", _BUNDLE, ("container_id",), aliases={"b": "bundle"}),
    Command("run", "create and run a container", {**_BUNDLE, "detach": "bool"},
            ("container_id",), aliases={"b": "bundle", "d": "detach"}),
    Command("start", "start a created container", {}, ("container_id",)),
    Command("state", "output the state of a container", {}, ("container_id",)),
    Command("pause", "suspend all processes of a container", {}, ("container_id",)),
    Command("resume", "resume the processes of a paused container", {}, ("container_id",)),
    Command("kill", "send a signal to the container's init process", {"all": "bool"},
            ("container_id",), rest="signal", aliases={"a": "all"}),
    Command("delete", "delete a container", {"force": "bool"}, ("container_id",),
            aliases={"f": "force"}),
    Command("exec", "run a process inside a running container",
            {"process": "str", "detach": "bool", "tty": "bool", "console-socket": "str",
             "pid-file": "str", "cwd": "str", "env": "list", "user": "str",
             "additional-gids": "ints", "cap": "list", "no-new-privs": "bool",
             "preserve-fds": "int"},
            ("container_id",), rest="args",
            aliases={"p": "process", "d": "detach", "t": "tty", "e": "env", "u": "user",
                     "g": "additional-gids", "c": "cap"}),
    Command("ps", "list the processes running inside a container", {"format": "str"},
            ("container_id",), rest="ps_args", aliases={"f": "format"}),
    Command("list", "list containers", {"format": "str", "quiet": "bool"}, (),
            aliases={"f": "format", "q": "quiet"}),
    Command("spec", "write a new config.json", {"bundle": "str", "rootless": "bool"}, (),
            aliases={"b": "bundle"}),
    Command("features", "show the enabled features", {}, ()),
)}


class Options:
    """Parsed flags, as attributes (the global ones and the command's)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def _help() -> str:
    lines = ["usage: moor-runtime [global flags] COMMAND [flags] ARGS", "",
             "moorage's OCI runtime, with runc's command line.", "", "commands:"]
    lines += [f"  {c.name:<10} {c.help}" for c in COMMANDS.values()]
    lines += ["", "global flags: --root DIR (default /run/moor-runtime), --log FILE, "
              "--log-format text|json, --cgroup-mode auto|v1|v2, --version"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> Options:
    values, rest = parse(argv, GLOBAL_FLAGS, GLOBAL_ALIASES, (), None, stop_at_positional=True)
    if values["version"] or values["help"] or not rest:
        values["command"] = None
        return Options(values)
    command = COMMANDS.get(rest[0])
    if command is None:
        raise InvalidParameter(f"no such command: {rest[0]}")
    if "--help" in rest[1:] or "-h" in rest[1:]:
        values["command"] = "help"
        values["usage"] = command.usage()
        return Options(values)
    own, _ = parse(rest[1:], command.flags, command.aliases, command.positionals, command.rest,
                   stop_at_positional=False)
    values.update(own)
    values["command"] = command.name
    values["root"] = values["root"] or DEFAULT_ROOT
    values["cgroup_mode"] = values["cgroup_mode"] or os.environ.get("MOOR_CGROUP_MODE", "auto")
    values["log_format"] = values["log_format"] or "text"
    return Options(values)


def main(argv: list[str] | None = None) -> int:
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # Skip interpreter teardown (module and GC finalisation): a few ms on every call.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except InvalidParameter as err:
        sys.stderr.write(f"moor-runtime: {err}\n")
        return 1
    if args.version:
        sys.stdout.write(f"moor-runtime version {__version__}\nspec: {OCI_VERSION}\n")
        return 0
    if args.command is None:
        sys.stderr.write(_help())
        return 0 if args.help else 1
    if args.command == "help":
        sys.stdout.write(f"usage: moor-runtime {args.usage}\n")
        return 0
    try:
        return _dispatch(args)
    except (MoorError, OSError) as err:
        _report(args, f"{args.command}: {_describe(err)}")
        return 1
    except KeyboardInterrupt:
        return 130


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror + (f": {err.filename}" if err.filename else "")
    return str(err)


def _report(args: Options, message: str) -> None:
    message = " ".join(message.split())
    sys.stderr.write(f"moor-runtime: {message}\n")
    if args.log:
        from moorage.timefmt import now as now_rfc3339

        if args.log_format == "json":
            line = json_codec.dumps({"level": "error", "msg": message, "time": now_rfc3339()})
        else:
            line = f'time="{now_rfc3339()}" level=error msg="{message}"'
        with open(args.log, "a") as f:
            f.write(line + "\n")


def _dispatch(args: Options) -> int:
    command = args.command
    from moorage.runtime import container

    if command in ("create", "run"):
        opts = container.CreateOptions(
            root=args.root, container_id=args.container_id, bundle=args.bundle or ".",
            pid_file=args.pid_file, console_socket=args.console_socket,
            preserve_fds=args.preserve_fds, no_pivot=args.no_pivot, cgroup_mode=args.cgroup_mode)
        if command == "create":
            container.create(opts)
            return 0
        return container.run(opts, detach=args.detach)
    if command == "start":
        container.start(args.root, args.container_id)
    elif command == "state":
        document = container.state_document(args.root, args.container_id)
        import json

        sys.stdout.write(json.dumps(document, indent=2))
    elif command == "kill":
        if len(args.signal) > 1:
            raise InvalidParameter(f"unexpected arguments: {' '.join(args.signal[1:])}")
        container.kill(args.root, args.container_id,
                       container.parse_signal(args.signal[0] if args.signal else "SIGTERM"),
                       args.all)
    elif command == "delete":
        container.delete(args.root, args.container_id, args.force)
    elif command == "pause":
        container.pause(args.root, args.container_id)
    elif command == "resume":
        container.resume(args.root, args.container_id)
    elif command == "exec":
        return _exec(args)
    elif command == "ps":
        return _ps(args)
    elif command == "list":
        _list(args)
    elif command == "spec":
        _spec(args)
    elif command == "features":
        _features()
    return 0


def _exec(args: Options) -> int:
    from moorage.runtime import execute
    from moorage.runtime.state import load

    if args.process:
        try:
            with open(args.process) as f:
                process = json_codec.loads(f.read())
        except ValueError as err:
            raise InvalidParameter(f"{args.process}: invalid JSON: {err}") from None
    else:
        command = args.args[1:] if args.args[:1] == ["--"] else args.args
        if not command:
            raise InvalidParameter("exec: a command is required (or --process)")
        base = load(args.root, args.container_id).config["process"]
        process = execute.build_process(
            base, args=command, env=args.env, cwd=args.cwd, user=args.user,
            additional_gids=args.additional_gids, caps=args.cap, terminal=args.tty,
            no_new_privs=args.no_new_privs)
    return execute.exec_process(
        args.root, args.container_id, process, detach=args.detach, pid_file=args.pid_file,
        console_socket=args.console_socket, preserve_fds=args.preserve_fds)


def _ps(args: Options) -> int:
    import subprocess

    from moorage.runtime.cgroups import load_manager
    from moorage.runtime.state import load

    st = load(args.root, args.container_id)
    pids = sorted(load_manager(st.cgroup_paths).pids())
    if args.format == "json":
        sys.stdout.write(json_codec.dumps(pids) + "\n")
        return 0
    ps_args = args.ps_args[1:] if args.ps_args[:1] == ["--"] else args.ps_args
    output = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    header = output[0]
    pid_column = header.split().index("PID")
    wanted = {str(p) for p in pids}
    lines = [header] + [line for line in output[1:]
                        if line.split()[pid_column] in wanted]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _list(args: Options) -> None:
    from moorage.errors import NotFound
    from moorage.runtime import container
    from moorage.runtime.state import list_ids

    documents = []
    for container_id in list_ids(args.root):
        try:
            documents.append(container.state_document(args.root, container_id))
        except NotFound:
            continue
    if args.quiet:
        sys.stdout.write("".join(d["id"] + "\n" for d in documents))
        return
    owner = _owner_name()
    for document in documents:
        document["owner"] = owner
    if args.format == "json":
        sys.stdout.write(json_codec.dumps(documents) + "\n")
        return
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], owner)
             for d in documents]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        # runc's tabwriter: minimum cell width 12, padding 3.
        cells = [cell.ljust(max(width + 3, 12)) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("".join(cells) + row[-1] + "\n")


def _owner_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _spec(args: Options) -> None:
    from moorage.errors import Conflict
    from moorage.runtime.spec import default_spec

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise Conflict("File config.json exists. Remove it first")
    with open(path, "w") as f:
        import json

        json.dump(default_spec(), f, indent="\t")


def _features() -> None:
    import json

    from moorage.runtime.capabilities import NAMES
    from moorage.runtime.mounts import OPTION_NAMES
    from moorage.runtime.spec import features

    sys.stdout.write(json.dumps(features(list(NAMES), OPTION_NAMES), indent=4) + "\n")
