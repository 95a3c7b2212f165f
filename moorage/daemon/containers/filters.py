"""`GET /containers/json` filters: id, name, label, status, exited, ancestor, before, since.

Name filters are regular expressions from the client. Python's engine backtracks and
holds the GIL while it does, so a pattern that could take exponential or high
polynomial time (a repeat inside a repeat, or more than one unbounded repeat) is
matched in a child process with a deadline; the common ones, literals and a single
repeat, are matched here.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Protocol

from moorage.daemon.filterargs import labelled, validate
from moorage.errors import InvalidParameter
from moorage.model.records import STATUSES, ContainerRecord

_KNOWN = ("id", "name", "label", "status", "exited", "ancestor", "before", "since",
          "health")
_HEALTH = ("starting", "healthy", "unhealthy", "none")
_REGEX_DEADLINE = 2.0
_UNBOUNDED = sre_parse.MAXREPEAT
_CHILD = ("import json, re, sys\n"
          "patterns, names = json.load(sys.stdin)\n"
          "json.dump({p: [n for n in names if re.search(p, n)] for p in patterns}, "
          "sys.stdout)\n")


class _Lookup(Protocol):
    def get(self, ref: str) -> ContainerRecord: ...


async def select(records: list[ContainerRecord], filters: dict[str, list[str]],
                 lookup: _Lookup) -> list[ContainerRecord]:
    """The records every filter matches, in their order; InvalidParameter for a bad one."""
    validate(filters, _KNOWN)
    names = await _name_matches(filters.get("name") or [], [r.name for r in records])
    return [r for r in records if _matches(r, filters, lookup, names)]


async def _name_matches(patterns: list[str], names: list[str]) -> dict[str, set[str]]:
    """Each pattern's matching names."""
    found: dict[str, set[str]] = {}
    slow = []
    for pattern in patterns:
        try:
            compiled = re.compile(pattern)
        except re.error:
            raise InvalidParameter(f"invalid filter: name={pattern}") from None
        if _may_backtrack(pattern):
            slow.append(pattern)
        else:
            found[pattern] = {n for n in names if compiled.search(n)}
    if slow:
        found.update(await _match_in_child(slow, names))
    return found


def _may_backtrack(pattern: str) -> bool:
    unbounded = 0

    def walk(items: object, depth: int) -> bool:
        nonlocal unbounded
        for op, arg in items:  # type: ignore[attr-defined]
            if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
                _, high, inner = arg
                if high == _UNBOUNDED or high > 32:
                    unbounded += 1
                if depth or walk(inner, depth + 1):
                    return True
            elif op == sre_parse.SUBPATTERN:
                if walk(arg[-1], depth):
                    return True
            elif op == sre_parse.BRANCH:
                if any(walk(branch, depth) for branch in arg[1]):
                    return True
            elif op in (sre_parse.GROUPREF, sre_parse.GROUPREF_EXISTS,
                        sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                return True
        return False

    return walk(sre_parse.parse(pattern), 0) or unbounded > 1


async def _match_in_child(patterns: list[str], names: list[str]) -> dict[str, set[str]]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", _CHILD, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(
            child.communicate(json.dumps([patterns, names]).encode()), _REGEX_DEADLINE)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise InvalidParameter(f"invalid filter: name={patterns[0]}: the expression takes "
                               "too long to match") from None
    if child.returncode != 0:
        raise InvalidParameter(f"invalid filter: name={patterns[0]}")
    return {p: set(v) for p, v in json.loads(out).items()}


def _matches(record: ContainerRecord, filters: dict[str, list[str]], lookup: _Lookup,
             names: dict[str, set[str]]) -> bool:
    for key, values in filters.items():
        # Every label filter must hold (dockerd's MatchKVList); other keys match any value.
        combine = all if key == "label" else any
        if values and not combine(_one(record, key, v, lookup, names) for v in values):
            return False
    return True


def _one(record: ContainerRecord, key: str, value: str, lookup: _Lookup,
         names: dict[str, set[str]]) -> bool:
    if key == "id":
        return record.id.startswith(value)
    if key == "name":
        return record.name in names[value]
    if key == "label":
        return labelled(record.config.labels, value)
    if key == "status":
        if value not in STATUSES:
            raise InvalidParameter(f"Invalid filter 'status={value}'")
        return record.state.status == value
    if key == "exited":
        try:
            code = int(value)
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={value}'") from None
        return record.state.status == "exited" and record.state.exit_code == code
    if key == "health":
        if value not in _HEALTH:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")
        health = record.state.health
        return (health.status if health is not None else "none") == value
    if key == "ancestor":
        return value in (record.config.image, record.image) \
            or record.image.removeprefix("sha256:").startswith(value)
    other = lookup.get(value)
    if key == "before":
        return record.created < other.created
    return record.created > other.created
