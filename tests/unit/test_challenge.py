"""WWW-Authenticate parsing (RFC 7235 section 4.1) as registries and token servers send it."""

from __future__ import annotations

import pytest

from moorage.protocol.challenge import Challenge, parse_challenges, preferred_challenge


def test_docker_hub_bearer_challenge() -> None:
    [c] = parse_challenges('Bearer realm="https://auth.docker.io/token",'
                           'service="registry.docker.io",'
                           'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.param("realm") == "https://auth.docker.io/token"
    assert c.param("service") == "registry.docker.io"
    assert c.param("scope") == "repository:library/busybox:pull"
    assert c.param("error") == ""


def test_commas_and_escapes_inside_quotes() -> None:
    [c] = parse_challenges(r'Bearer realm="https://r/token",scope="repository:a/b:pull,push",'
                           r'error="say \"no\", twice"')
    assert c.param("scope") == "repository:a/b:pull,push"
    assert c.param("error") == 'say "no", twice'


def test_case_spaces_and_bare_tokens() -> None:
    [c] = parse_challenges('BEARER  Realm = "x" ,  Service = reg.example')
    assert c == Challenge("bearer", (("realm", "x"), ("service", "reg.example")))


def test_several_challenges_in_one_header() -> None:
    challenges = parse_challenges('Basic realm="htpasswd", Bearer realm="https://t",'
                                  'service="s", Negotiate abc==, Digest')
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate", "digest"]
    assert challenges[0].params == (("realm", "htpasswd"),)
    assert challenges[1].params == (("realm", "https://t"), ("service", "s"))
    assert challenges[2].params == ()


@pytest.mark.parametrize(("header", "expected"), [
    ("", []),
    (" , ,", []),
    ('="x"', []),
    ("Bearer", [Challenge("bearer", ())]),
    # Unterminated quoted string: the parameter is dropped, the scheme kept.
    ('Bearer realm="https://t', [Challenge("bearer", ())]),
    # Not comma separated: what follows is not a challenge.
    ('Bearer realm="x" junk', [Challenge("bearer", (("realm", "x"),))]),
    ('Basic realm="x"; Bearer', [Challenge("basic", (("realm", "x"),))]),
    ('Bearer"x"', []),
])
def test_malformed_headers_keep_what_was_read(header: str,
                                              expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_preferred_challenge_is_bearer_across_headers() -> None:
    chosen = preferred_challenge(['Basic realm="r"', 'Bearer realm="https://t",service="s"'])
    assert chosen is not None and chosen.scheme == "bearer"
    basic = preferred_challenge(["", 'Basic realm="r"'])
    assert basic is not None and basic.scheme == "basic"
    assert preferred_challenge([]) is None
    assert preferred_challenge(["  "]) is None
