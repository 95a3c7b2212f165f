"""Output as the docker CLI writes it: tabwriter tables, go-units sizes and durations,
`--format` templates with the `table` prefix, and indented inspect JSON."""

from __future__ import annotations

import sys
import time

from moorage.cli.session import CommandError
from moorage.protocol.units import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def tabulate(lines: list[str]) -> str:
    """text/tabwriter as docker configures it: minwidth 10, padding 3, spaces.

    Cells end with a tab; a line's last cell is not part of any column.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            if i == len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell) + 3, 10)
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "".join(line + "\n" for line in out)


def since(timestamp: float) -> str:
    return human_duration(time.time() - timestamp) + " ago"


def _scaled(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units (kB, MB), as `images` and `ps -s`."""
    return _scaled(size, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"), precision)


def binary_size(size: float) -> str:
    """go-units BytesSize: binary units (KiB, MiB), as `stats`."""
    return _scaled(size, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"),
                   4)


def go_time(timestamp: float) -> str:
    """Go's time.String() in local time, as `ps --format {{.CreatedAt}}` prints it."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(timestamp))


def natural_key(name: str) -> list[tuple[int, int, str]]:
    """The docker CLI's order of names (fvbommel/sortorder NaturalLess): digit runs
    compare as numbers, everything else byte by byte."""
    key, chunk = [], ""
    for char in name + "\0":
        if chunk and (char.isdigit() != chunk[-1].isdigit() or char == "\0"):
            key.append((1, int(chunk), "") if chunk[-1].isdigit() else (0, 0, chunk))
            chunk = ""
        chunk += char
    return key


def indented_json(value: Any) -> str:
    """`inspect` output: 4-space indent, HTML characters escaped like Go's encoder."""
    import json  # here, not at the top: `json` costs ~8 ms and most commands never indent

    text = json.dumps(value, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write(text: str) -> None:
    sys.stdout.write(text)


def render(rows: list[dict[str, Any]], fmt: str | None, default: str,
           headers: dict[str, str]) -> str:
    """Rows through `--format` (or the command's default `table …` format).

    `table` prints a header line whose cells are the columns' titles; docker derives
    those from the field names, so does this.
    """
    from moorage.cli.template import Template

    fmt = fmt or default
    if fmt == "json":
        fmt = "{{json .}}"
    is_table = fmt.startswith("table")
    if is_table:
        fmt = fmt[5:].lstrip() or default[5:].lstrip()
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    template = Template(fmt)
    lines = [template.execute(row) for row in rows]
    if not is_table:
        return "".join(line + "\n" for line in lines)
    header = Template(fmt).execute(_HeaderRow(headers))
    return tabulate([header, *lines])


class _HeaderRow(dict):  # type: ignore[type-arg]
    """Answers every field with its column title ("ID" → "CONTAINER ID")."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__()
        self._headers = headers

    def __contains__(self, key: object) -> bool:
        return key != "Label"  # a method, as on the rows

    def __getitem__(self, key: str) -> str:
        return self._headers.get(key, _upper_words(key))

    def Label(self, name: str) -> str:  # spelt as templates call it
        """The docker CLI's title for `{{.Label "com.example.some-key"}}`: "some key"."""
        return name.rsplit(".", 1)[-1].replace("-", " ").replace("_", " ")


def _upper_words(name: str) -> str:
    out = ""
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out += " "
        out += c.upper()
    return out


def prune_report(title: str, deleted: list, reclaimed: int | None = None) -> str:
    """docker's prune output: a titled block of what went (if anything), then the total.

    Image entries are {"untagged"|"deleted": id} objects, one line per pair.
    """
    text = ""
    if deleted:
        lines = [f"{k.lower()}: {v}" for item in deleted if isinstance(item, dict)
                 for k, v in item.items()] or [str(item) for item in deleted]
        text = title + "\n" + "".join(line + "\n" for line in lines) + "\n"
    if reclaimed is not None:
        text += f"Total reclaimed space: {human_size(reclaimed, 4)}\n"
    return text


def save_stream(chunks: Any, output: str | None) -> None:
    """`save`/`export`: the bytes to the -o file, or to stdout unless it is a terminal."""
    if not output and sys.stdout.isatty():
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or "
                           "redirect")
    target = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        for data in chunks:
            target.write(data)
    finally:
        if output:
            target.close()
