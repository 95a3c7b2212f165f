"""Parsing a Dockerfile (moby/buildkit frontend/dockerfile/parser and instructions):
parser directives, line continuations, comments, flags, JSON or shell forms, and the
stages. Errors name the line as Docker's do ("dockerfile parse error line N: …")."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from moorage.errors import InvalidParameter

INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir"})
# The flags each instruction takes; anything else is refused (never ignored).
# dockerd 20.10's classic builder names other flags unknown (--link, --exclude…); --mount,
# --network and --chmod are BuildKit's, which moorage has.
_FLAGS = {"from": {"platform"}, "copy": {"from", "chown", "chmod"}, "add": {"chown", "chmod"},
          "run": {"mount", "network"},
          "healthcheck": {"interval", "timeout", "start-period", "retries"}}
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.]*)\2")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Heredoc:
    name: str
    body: str
    expand: bool  # an unquoted terminator: variables are expanded in the body


@dataclass(frozen=True, slots=True)
class Instruction:
    name: str  # lower case
    args: str  # what follows the name and flags, continuations joined
    original: str  # the instruction as written (continuations joined), for history
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    heredocs: tuple[Heredoc, ...] = ()

    def json_args(self) -> list[str] | None:
        """The exec (JSON array) form, or None for the shell form."""
        if not self.args.startswith("["):
            return None
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None


@dataclass(slots=True)
class Stage:
    base: str
    name: str
    line: int
    platform: str = ""
    instructions: list[Instruction] = field(default_factory=list)


@dataclass(slots=True)
class Dockerfile:
    escape: str
    meta_args: list[Instruction]  # the ARGs before the first FROM
    stages: list[Stage]
    warnings: list[str]


def error(line: int, message: str) -> InvalidParameter:
    return InvalidParameter(f"dockerfile parse error line {line}: {message}")


def parse(text: str) -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    warnings: list[str] = []
    index = 0
    # Parser directives: only at the very top, before any other line.
    seen: set[str] = set()
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        if not match:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key in seen:
            raise error(index + 1, f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise error(index + 1, f"invalid escape token '{value}' does not match "
                                       "` or \\")
            escape = value
        elif key == "syntax":
            warnings.append(f"the syntax directive ({value}) is ignored: moorage parses "
                            "the Dockerfile itself")
        elif key == "check":
            warnings.append(f"the check directive ({value}) is ignored: moorage runs no "
                            "build checks")
        index += 1
    stages: list[Stage] = []
    meta: list[Instruction] = []
    for instruction in _instructions(lines, index, escape):
        if instruction.name == "from":
            stages.append(_stage(instruction, len(stages)))
        elif not stages:
            if instruction.name != "arg":
                raise InvalidParameter("no build stage in current context")
            meta.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise InvalidParameter("the Dockerfile (Dockerfile) cannot be empty" if not meta
                               else "no build stage in current context")
    return Dockerfile(escape, meta, stages, warnings)


def _stage(instruction: Instruction, number: int) -> Stage:
    words = instruction.args.split()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
            raise error(instruction.line, f"invalid name for build stage: \"{words[2]}\", "
                                          "name can't start with a number or contain "
                                          "symbols")
    elif len(words) == 1:
        name = ""
    else:
        raise error(instruction.line, "FROM requires either one or three arguments")
    return Stage(words[0], name, instruction.line, instruction.flags.get("platform", ""))


def _instructions(lines: list[str], start: int, escape: str) -> list[Instruction]:
    found = []
    index = start
    while index < len(lines):
        raw = lines[index]
        first = index + 1
        index += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        text = raw.strip()
        while _continues(text, escape):
            text = text[:-1]
            # Comment and blank lines inside a continued instruction are dropped.
            while index < len(lines) and (not lines[index].strip()
                                          or lines[index].lstrip().startswith("#")):
                index += 1
            if index >= len(lines):
                break
            # The next line is appended as written (BuildKit's parser keeps its indent).
            text += lines[index].rstrip()
            index += 1
        instruction = _instruction(text.strip(), first)
        if instruction.name in ("run", "copy", "add"):
            heredocs = []
            for match in _HEREDOC.finditer(instruction.args):
                quote, name = match.group(2), match.group(3)
                body, index = _heredoc_body(lines, index, name, bool(match.group(1)),
                                            first)
                heredocs.append(Heredoc(name, body, expand=not quote))
            if heredocs:
                instruction = replace(instruction, heredocs=tuple(heredocs))
        found.append(instruction)
    return found


def _heredoc_body(lines: list[str], index: int, name: str, strip_tabs: bool,
                  line: int) -> tuple[str, int]:
    """The lines up to the terminator ``name`` (BuildKit's heredocs; ``<<-`` strips
    leading tabs); the index after the terminator."""
    body = []
    while index < len(lines):
        current = lines[index].lstrip("\t") if strip_tabs else lines[index]
        index += 1
        if current == name:
            return "".join(b + "\n" for b in body), index
        body.append(current)
    raise error(line, f"unterminated heredoc {name}")


def _continues(text: str, escape: str) -> bool:
    # An escaped escape at the end is a literal, not a continuation.
    if not text.endswith(escape):
        return False
    trailing = len(text) - len(text.rstrip(escape))
    return trailing % 2 == 1


def _instruction(text: str, line: int) -> Instruction:
    word, _, rest = text.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    name = word.lower()
    if name not in INSTRUCTIONS:
        raise error(line, f"unknown instruction: {word.upper()}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        flag, _, after = rest.partition(" ")
        key, sep, value = flag[2:].partition("=")
        allowed = _FLAGS.get(name, set())
        if key not in allowed:
            raise error(line, f"Unknown flag: {key}")
        if not sep:
            raise error(line, f"Missing a value on flag: {key}")
        # --mount may be given several times.
        flags[key] = f"{flags[key]}\n{value}" if key in flags and key == "mount" else value
        rest = after.strip()
    if not rest and name not in ("run", "cmd", "entrypoint"):
        raise error(line, f"{name.upper()} requires at least one argument")
    instruction = Instruction(name, rest, text, line, flags)
    _validate(instruction)
    return instruction


def _validate(inst: Instruction) -> None:
    """What moby's instructions.Parse refuses before the build starts."""
    if inst.name == "shell":
        shell = inst.json_args()
        if shell is None:
            raise error(inst.line, "SHELL requires the arguments to be in JSON form")
        if not shell:
            raise error(inst.line, "SHELL requires at least one argument")
    elif inst.name == "onbuild":
        word = inst.args.split(None, 1)[0].upper()
        if word == "ONBUILD":
            raise error(inst.line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if word in ("FROM", "MAINTAINER"):
            raise error(inst.line, f"{word} isn't allowed as an ONBUILD trigger")
        _instruction(inst.args, inst.line)
    elif inst.name == "healthcheck":
        word = inst.args.split(None, 1)[0].upper()
        if word not in ("NONE", "CMD"):
            raise error(inst.line, f'Unknown type "{word}" in HEALTHCHECK (try CMD)')
