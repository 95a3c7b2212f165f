"""Pure pieces: flag syntax, templates, human units, tabwriter."""

from __future__ import annotations

import io

import pytest

from moorage.cli.flags import BOOL, LIST, STR, UsageError, flag, parse
from moorage.cli.output import human_size, tabulate
from moorage.cli.progress import Progress, bar, go_duration
from moorage.cli.session import CommandError
from moorage.cli.template import Template
from moorage.protocol.units import human_duration

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


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("not a real terminal")


def test_progress_bar_text() -> None:
    assert bar(0, 0, 120, None, 0) == ""
    assert bar(1_200_000, 2_400_000, 120, 100.0, 106.0) == \
        "[=========================>                         ]    1.2MB/2.4MB 6s"
    assert bar(1_200_000, 2_400_000, 80, 100.0, 106.0) == "   1.2MB/2.4MB 6s"
    assert bar(5000, 0, 120, None, 0) == "     5kB"
    assert go_duration(95) == "1m35s" and go_duration(3605) == "1h0m5s"


def test_progress_on_a_terminal_rewrites_layer_lines() -> None:
    out = _Terminal()
    progress = Progress(out)  # type: ignore[arg-type]
    progress.width = 120
    for message in ({"status": "Pulling from library/busybox", "id": "latest"},
                    {"status": "Downloading", "id": "a", "progressDetail": {"current": 1,
                                                                            "total": 4}},
                    {"status": "Downloading", "id": "b", "progressDetail": {"current": 2,
                                                                            "total": 4}},
                    {"status": "Pull complete", "id": "a", "progressDetail": {}},
                    {"status": "Digest: sha256:x"}):
        progress.show(message)
    text = out.getvalue()
    assert text.startswith("latest: Pulling from library/busybox\n\n\x1b[1A\x1b[2K\ra: "
                           "Downloading [============>")
    assert "\x1b[2A\x1b[2K\ra: Pull complete\r\x1b[2B" in text  # a's line, two up
    assert text.endswith("Digest: sha256:x\n")


def test_progress_off_a_terminal_is_plain_lines() -> None:
    out = io.StringIO()
    progress = Progress(out)  # type: ignore[arg-type]
    progress.show({"status": "Downloading", "id": "a", "progressDetail": {"current": 1,
                                                                          "total": 4}})
    progress.show({"status": "Pull complete", "id": "a", "progressDetail": {}})
    progress.show({"stream": "Loaded image: busybox:latest\n"})
    assert out.getvalue() == "a: Pull complete\nLoaded image: busybox:latest\n"
    with pytest.raises(CommandError, match="denied"):
        progress.show({"errorDetail": {"message": "denied"}, "error": "denied"})
