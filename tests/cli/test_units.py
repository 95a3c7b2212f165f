"""Pure pieces: flag syntax, templates, human units, tabwriter."""

from __future__ import annotations

import pytest

from moorage.cli.flags import BOOL, LIST, STR, UsageError, flag, parse
from moorage.cli.output import human_duration, human_size, tabulate
from moorage.cli.template import Template

FLAGS = (flag("d|detach", BOOL, ""), flag("i|interactive", BOOL, ""), flag("t|tty", BOOL, ""),
         flag("e|env", LIST, ""), flag("name", STR, ""), flag("p|publish", LIST, ""))


def test_combined_short_flags_and_command_after_image() -> None:
    opts, rest = parse(FLAGS, ["-dit", "-eA=1", "--env", "B=2", "-p8080:80", "--name=x",
                               "img", "sh", "-c", "-e"], interspersed=False)
    assert (opts.detach, opts.interactive, opts.tty) == (True, True, True)
    assert opts.env == ["A=1", "B=2"] and opts.publish == ["8080:80"] and opts.name == "x"
    assert rest == ["img", "sh", "-c", "-e"]
    _, rest = parse(FLAGS, ["-d", "--", "-img"], interspersed=False)
    assert rest == ["-img"]


@pytest.mark.parametrize(("args", "message"), [
    (["--x"], "unknown flag: --x"), (["-z"], "unknown shorthand flag: 'z' in -z"),
    (["-e"], "flag needs an argument: 'e' in -e"), (["--name"], "flag needs an argument: --name"),
])
def test_flag_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(FLAGS, args)


def test_templates() -> None:
    doc = {"ID": "abc", "State": {"Status": "up"}, "Names": ["a", "b"], "L": {"k": "v"}}
    assert Template("{{.State.Status}} {{json .Names}} {{join .Names \",\"}}").execute(
        doc) == 'up ["a","b"] a,b'
    assert Template("{{range .Names}}<{{.}}>{{end}}{{if .ID}}!{{end}}").execute(doc) == "<a><b>!"
    assert Template("{{index .L \"k\" | upper}} {{.L}}").execute(doc) == "V map[k:v]"


def test_units() -> None:
    assert human_size(1986000) == "1.99MB" and human_size(1986000, 4) == "1.986MB"
    assert human_size(0) == "0B"
    assert [human_duration(s) for s in (0.5, 1, 59, 60, 150, 3600, 7200, 3 * 86400)] == [
        "Less than a second", "1 second", "59 seconds", "About a minute", "2 minutes",
        "About an hour", "2 hours", "3 days"]
    assert tabulate(["A\tBB\tC", "xxxxxxxxxx\ty\tz"]) == (
        "A            BB        C\nxxxxxxxxxx   y         z\n")
