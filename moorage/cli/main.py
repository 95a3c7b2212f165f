"""Entry point of `moor`: global flags, dispatch to one command module, error reporting.

Start-up is part of the product: this module imports only the flag parser and
the command table; the command's module (and whatever it needs) is imported
after the command line names it.
"""

from __future__ import annotations

import os
import sys

from moorage.cli import commands
from moorage.cli.flags import BOOL, LIST, STR, ArgsError, Spec, UsageError, flag, help_text, parse
from moorage.cli.session import CommandError, Session
from moorage.client.errors import APIError, ConnectionFailed, EndpointError

GLOBAL_FLAGS = (
    flag("config", STR, "Location of client config files"),
    flag("c|context", STR, 'Name of the context to use to connect to the daemon (overrides '
                           'DOCKER_HOST env var and default context set with "moor context use")'),
    flag("D|debug", BOOL, "Enable debug mode"),
    flag("H|host", LIST, "Daemon socket to connect to"),
    flag("l|log-level", STR, 'Set the logging level ("debug", "info", "warn", "error", "fatal")'),
    flag("tls", BOOL, "Use TLS; implied by --tlsverify"),
    flag("tlscacert", STR, "Trust certs signed only by this CA"),
    flag("tlscert", STR, "Path to TLS certificate file"),
    flag("tlskey", STR, "Path to TLS key file"),
    flag("tlsverify", BOOL, "Use TLS and verify the remote"),
    flag("v|version", BOOL, "Print version information and quit"),
)
PROG = "moor"


def _top_help() -> str:
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "",
             "A self-sufficient runtime for containers", "", "Commands:"]
    lines += [f"  {name:<11} {summary}" for name, (_, _, summary) in commands.TOP.items()]
    lines += ["", "Management Commands:"]
    lines += [f"  {name:<11} {summary}" for name, (summary, _) in commands.GROUPS.items()]
    lines += [f"  {'compose':<11} Define and run multi-container applications"]
    lines += [f"  {'registry':<11} Run a registry server (serve, gc)"]
    lines += ["", "Global Options:"]
    spec = Spec("", lambda: None, GLOBAL_FLAGS)
    lines += help_text(PROG, spec, "").split("Options:\n", 1)[1].splitlines()
    lines += ["", f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _group_help(group: str) -> str:
    summary, verbs = commands.GROUPS[group]
    lines = [f"Usage:  {PROG} {group} COMMAND", "", summary, "", "Commands:"]
    lines += [f"  {verb:<11} {text}" for verb, (_, _, text) in sorted(verbs.items())]
    lines += ["", f"Run '{PROG} {group} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _unknown(words: str, usage_of: str) -> CommandError:
    usage = f"\n\nUsage:  {usage_of}" if usage_of != PROG else ""
    return CommandError(f"{PROG}: unknown command: {words}{usage}\n\nRun '{usage_of} --help' "
                        "for more information", 1)


def _lookup(args: list[str]) -> tuple[str, tuple[str, str, str], list[str]]:
    """(command path, table entry, remaining args) for `ps …` or `container ls …`."""
    name = args[0]
    if name in commands.TOP:
        return name, commands.TOP[name], args[1:]
    if name not in commands.GROUPS:
        raise _unknown(f"{PROG} {name}", PROG)
    verbs = commands.GROUPS[name][1]
    rest = args[1:]
    if not rest or rest[0] in ("--help", "-h"):
        sys.stdout.write(_group_help(name))
        raise SystemExit(0)
    if rest[0].startswith("-"):
        raise CommandError(f"unknown flag: {rest[0]}\n\nUsage:  {PROG} {name} COMMAND\n\n"
                           f"Run '{PROG} {name} --help' for more information", 125)
    verb = commands.ALIASES.get(rest[0], rest[0])
    if verb not in verbs:
        raise _unknown(f"{PROG} {name} {rest[0]}", f"{PROG} {name}")
    return f"{name} {verb}", verbs[verb], rest[1:]


def _run(argv: list[str], session_box: list[Session]) -> int:
    options, rest = parse(GLOBAL_FLAGS, argv, interspersed=False)
    if options.version:
        from moorage import __version__

        sys.stdout.write(f"moor version {__version__}\n")
        return 0
    if options.config:
        os.environ["DOCKER_CONFIG"] = options.config
    if not rest or options.help:
        sys.stdout.write(_top_help())
        return 0
    if rest[0] == "registry":
        # A server, not a client of the engine: it runs in its own interpreter
        # so that the CLI keeps importing nothing but the API client.
        os.execv(sys.executable, [sys.executable, "-P", "-m", "moorage.registry", *rest[1:]])
    if rest[0] == "compose":
        from moorage.compose.cli import main as compose

        session = Session(options, PROG)
        session_box.append(session)
        return compose(rest[1:], lambda: session.client)
    path, (module_name, key, summary), args = _lookup(rest)
    spec: Spec = __import__(module_name, fromlist=["SPECS"]).SPECS[key]
    session = Session(options, PROG)
    session.command = path
    session_box.append(session)
    prog = f"{PROG} {path}"
    try:
        opts, positionals = parse(spec.flags, args, spec.interspersed)
    except UsageError as err:
        raise CommandError(f"{err}\n\nUsage:  {prog} {spec.usage}\n\n"
                           f"Run '{prog} --help' for more information", 125) from None
    if opts.help:
        sys.stdout.write(help_text(prog, spec, summary))
        return 0
    try:
        _check_count(spec, positionals, prog)
    except ArgsError as err:
        raise CommandError(f"{PROG}: '{prog}' {err}\n\nUsage:  {prog} {spec.usage}\n\n"
                           f"See '{prog} --help' for more information", 1) from None
    return spec.run(session, opts, positionals) or 0


def _check_count(spec: Spec, positionals: list[str], prog: str) -> None:
    n = len(positionals)
    if spec.max_args == 0 and n:
        raise ArgsError("accepts no arguments")
    if n < spec.min_args:
        plural = "s" if spec.min_args > 1 else ""
        if spec.max_args == spec.min_args:
            raise ArgsError(f"requires exactly {spec.min_args} argument{plural}")
        raise ArgsError(f"requires at least {spec.min_args} argument{plural}")
    if spec.max_args is not None and n > spec.max_args:
        plural = "s" if spec.max_args > 1 else ""
        if spec.max_args == spec.min_args:
            raise ArgsError(f"requires exactly {spec.max_args} argument{plural}")
        raise ArgsError(f"requires at most {spec.max_args} argument{plural}")


def _daemon_down(host: str) -> str:
    return (f"Cannot connect to the moorage daemon at {host}. Is the moord daemon running? "
            "(start it with: moord)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure becomes a message on stderr and an exit code."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # Skip interpreter teardown (module and GC finalisation): 4-6 ms of every command.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    box: list[Session] = []
    try:
        code = _run(argv, box)
        sys.stdout.flush()
        return code
    except CommandError as err:
        message, code = err.message, err.code
        if err.with_help and box:
            message = (f"{PROG}: {message}\n\nRun '{PROG} {box[0].command} --help' "
                       "for more information")
    except UsageError as err:  # a global flag
        message, code = (f"{err}\n\nUsage:  {PROG} [OPTIONS] COMMAND\n\n"
                         f"Run '{PROG} --help' for more information"), 125
    except APIError as err:
        message, code = f"Error response from daemon: {err.message}", 1
    except ConnectionFailed as err:
        message, code = _daemon_down(err.host), 1
    except EndpointError as err:
        message, code = str(err), 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`moor ps | head`): quiet, as a Go program is on EPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except SystemExit as err:
        return int(err.code or 0)
    except Exception as err:  # never a traceback, unless asked for one
        if os.environ.get("MOOR_TRACEBACK"):
            raise
        message, code = f"{PROG}: {type(err).__name__}: {err}", 1
    finally:
        for session in box:
            session.close()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.write(message.rstrip("\n") + "\n")
    return code
