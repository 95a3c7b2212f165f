"""``WWW-Authenticate`` challenges (RFC 7235 section 4.1), as registries send them.

The distribution spec's token flow (docker/distribution docs/spec/auth/token.md)
answers 401 with ``Bearer realm="…",service="…",scope="…"``; htpasswd-protected
registries answer ``Basic realm="…"``. Sans-IO: a header value in, challenges out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# auth-param = token BWS "=" BWS ( token / quoted-string )
_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: tuple[tuple[str, str], ...]  # names lower case, values unquoted

    def param(self, name: str) -> str:
        return dict(self.params).get(name, "")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one header value (several may share it, comma separated)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: list[tuple[str, str]] = []
        while pos < len(header):
            param = _PARAM.match(header, pos)
            # A bare token after a comma starts the next challenge.
            if param is None:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.append((param.group(1).lower(), value))
            pos = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), tuple(params)))
    return challenges
