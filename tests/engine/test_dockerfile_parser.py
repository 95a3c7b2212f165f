"""moorage's Dockerfile parser beside BuildKit's own (the `dockerfile` package binds its
Go parser) on the build corpus: instructions, lines, flags, JSON forms, heredocs."""

from __future__ import annotations

import pytest
from build_corpus import CASES, ERRORS
from test_build import _BUILDKIT_CASES

from moorage.build.dockerfile import parse
from moorage.errors import InvalidParameter

dockerfile = pytest.importorskip("dockerfile")

_TEXTS = [c.dockerfile for c in CASES + ERRORS if c.dockerfile.strip()] + [
    "FROM busybox\n" + d for d, _, _ in _BUILDKIT_CASES] + [
    "FROM busybox\nRUN a \\\n    b \\\n  # comment\n\n    c\n",
    "# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n",
    "FROM busybox\nRUN <<A cat - <<B\na\nA\nb\nB\n",
]


def _ours(text: str) -> list[tuple]:
    parsed = parse(text)
    found = [("ARG", i.line, i.original) for i in parsed.meta_args]
    for stage in parsed.stages:
        found.append(("FROM", stage.line, None))
        for inst in stage.instructions:
            found.append((inst.name.upper(), inst.line, inst.original))
    return found


def _theirs(text: str) -> list[tuple]:
    found = []
    for command in dockerfile.parse_string(text):
        original = None if command.cmd == "FROM" else command.original.split("\n")[0]
        found.append((command.cmd, command.start_line, original))
    return found


@pytest.mark.parametrize("text", _TEXTS)
def test_same_instructions(text: str) -> None:
    try:
        ours = _ours(text)
    except InvalidParameter:
        pytest.skip("moorage refuses it before the instruction level")
    assert ours == _theirs(text)


def _untabbed(body: str) -> str:
    return "".join(line.lstrip("\t") for line in body.splitlines(keepends=True))


@pytest.mark.parametrize("text", [t for t in _TEXTS if "<<" in t and "EOF\necho\n" not in t])
def test_same_heredocs(text: str) -> None:
    ours = [(h.name, h.body) for s in parse(text).stages for i in s.instructions
            for h in i.heredocs]
    theirs = [(h.name, h.content) for c in dockerfile.parse_string(text) for h in c.heredocs]
    if "<<-" in text:  # BuildKit strips the tabs when it runs the step, moorage at parsing
        theirs = [(name, _untabbed(body)) for name, body in theirs]
    assert ours == theirs


def test_directives() -> None:
    parsed = parse("# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM busybox\n")
    assert parsed.escape == "`"
    assert parsed.warnings == [
        "the syntax directive (docker/dockerfile:1) is ignored: moorage parses the "
        "Dockerfile itself",
        "the check directive (skip=all) is ignored: moorage runs no build checks"]
    with pytest.raises(InvalidParameter, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\\\nFROM busybox\n")
    # A directive after the first instruction or comment is a comment.
    assert parse("# a comment\n# escape=`\nFROM busybox\n").escape == "\\"
