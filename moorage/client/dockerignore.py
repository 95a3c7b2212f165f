""".dockerignore, by Docker's rules (moby/patternmatcher), not gitignore's: patterns are
cleaned paths relative to the context root, ``*`` and ``?`` stay inside one path
element, ``**`` spans any number of them, ``!`` re-includes, the last matching
pattern wins, and a pattern that matches a directory matches everything in it."""

from __future__ import annotations

import os
import posixpath


class Pattern:
    __slots__ = ("dirs", "exclusion", "regex", "text")

    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        if self.exclusion:
            text = text[1:]
        self.text = text
        import re  # here: a context without .dockerignore compiles no pattern

        self.regex = re.compile(_regex(text))
        self.dirs = text.split("/")

    def matches(self, path: str) -> bool:
        """The path, or one of its parent directories, matches (MatchesOrParentMatches)."""
        if self.regex.match(path):
            return True
        parts = path.split("/")
        return any(self.regex.match("/".join(parts[:i])) for i in range(1, len(parts)))


def _regex(pattern: str) -> str:
    import re

    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out += "(.*/)?" if out == "^" or out.endswith("/") else ".*/"
                    # "**/" at the start or after "/" matches zero or more directories
                    i += 1
                    continue
                out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern: {pattern}")
            body = pattern[i + 1:end]
            if body.startswith("!") or body.startswith("^"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return out + "$"


def read_patterns(text: str) -> list[str]:
    """moby's ignorefile.ReadAll: comments and blanks dropped, each pattern cleaned."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
        if line and line != "/":
            line = posixpath.normpath(line).lstrip("/") or "."
        patterns.append(("!" if negate else "") + line)
    return patterns


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [Pattern(p) for p in patterns if p]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        result = False
        for pattern in self.patterns:
            if pattern.exclusion == result and pattern.matches(path):
                result = not pattern.exclusion
        return result

    def files(self, root: str) -> list[str]:
        """The context's paths to send (relative, sorted, directories included)."""
        found = []
        for base, dirs, files in os.walk(root):
            rel_base = os.path.relpath(base, root)
            rel_base = "" if rel_base == "." else rel_base
            kept_dirs = []
            for name in sorted(dirs):
                rel = posixpath.join(rel_base, name) if rel_base else name
                if self.excluded(rel):
                    # A directory is walked still when a "!" pattern may re-include
                    # something below it.
                    if self.has_exclusions and any(p.exclusion and (
                            p.text.startswith(rel + "/") or "*" in p.text)
                            for p in self.patterns):
                        kept_dirs.append(name)
                    continue
                found.append(rel)
                kept_dirs.append(name)
            dirs[:] = kept_dirs
            for name in sorted(files):
                rel = posixpath.join(rel_base, name) if rel_base else name
                if not self.excluded(rel):
                    found.append(rel)
        return sorted(found)
