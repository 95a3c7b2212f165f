"""``WWW-Authenticate`` challenges (RFC 7235 section 4.1), as registries send them.

The distribution spec's token flow (docker/distribution docs/spec/auth/token.md)
answers 401 with ``Bearer realm="…",service="…",scope="…"``; htpasswd-protected
registries answer ``Basic realm="…"``. Sans-IO: header values in, challenges out.
Used by the engine's registry client and by the registry's pull-through client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(_TOKEN)
# auth-param = token BWS "=" BWS ( token / quoted-string )
_PARAM = re.compile(rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))[ \t]*')
# challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]: a token68 carries no
# parameter registries use; it is skipped so a challenge after it is still read.
_TOKEN68 = re.compile(r"[ \t]+[A-Za-z0-9._~+/-]+=*[ \t]*(?=,|$)")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: tuple[tuple[str, str], ...]  # names lower case, values unquoted

    def param(self, name: str) -> str:
        return dict(self.params).get(name, "")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one header value (several may share it, comma separated).

    Lenient as Go's parsers are: reading stops at the first thing that is not
    a challenge (an unterminated quoted string, a stray character), keeping
    the challenges read up to there."""
    challenges: list[Challenge] = []
    pos = 0
    while True:
        while pos < len(header) and header[pos] in ", \t":
            pos += 1
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        if pos < len(header) and header[pos] not in ", \t":
            break
        params: list[tuple[str, str]] = []
        token68 = _TOKEN68.match(header, pos)
        if token68 is not None:
            pos = token68.end()
        while (param := _PARAM.match(header, pos)) is not None:
            quoted = param.group(2)
            value = _ESCAPE.sub(r"\1", quoted) if quoted is not None else param.group(3)
            params.append((param.group(1).lower(), value))
            pos = param.end()
            if not header.startswith(",", pos):
                break
            # A comma before either the next parameter or the next challenge: a
            # token not followed by "=" is a scheme, which _PARAM does not match.
            pos += 1
        challenges.append(Challenge(scheme.group().lower(), tuple(params)))
        rest = header[pos:].lstrip(" \t")
        if rest and rest[0] != "," and header[pos - 1] != ",":
            break  # challenges are comma separated: this is not one
    return challenges


def preferred_challenge(headers: Iterable[str]) -> Challenge | None:
    """The challenge to answer among all ``WWW-Authenticate`` headers of a response:
    Bearer when offered (a token scoped to the repository), else the first."""
    challenges = [c for header in headers for c in parse_challenges(header)]
    return next((c for c in challenges if c.scheme == "bearer"),
                challenges[0] if challenges else None)
