"""Image references parse and normalise like github.com/distribution/reference.

Most vectors are taken from that package's normalize_test.go and reference_test.go
(adapted: Go's ``Parse`` without normalisation is not a public function here, so its
vectors go through ``parse_normalized``, which adds the domain).
"""

from __future__ import annotations

import pytest

from moorage.errors import InvalidParameter
from moorage.image.reference import (
    Reference,
    parse_digest,
    parse_docker_ref,
    parse_normalized,
)

HEX64 = "f" * 64
DIGEST = f"sha256:{HEX64}"
BUSYBOX_DIGEST = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"
IDENTIFIER = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"


# normalize_test.go TestValidateReferenceName and TestValidateRemoteName.
VALID_NAMES = [
    "docker/docker",
    "library/debian",
    "debian",
    "localhost/library/debian",
    "localhost/debian",
    "LOCALDOMAIN/library/debian",
    "LOCALDOMAIN/debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    f"docker.io/{IDENTIFIER}",
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
]

INVALID_NAMES = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    IDENTIFIER,
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
    "",
    ":justtag",
    "@" + DIGEST,
    "aa/asdf$$^/aa",
    "[2001:db8::1]:tag",
    "[fe80::1%@invalidzone]:5000/repo",
    "busybox\n",
    "busybox:\u00e9t\u00e9",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_parse(name: str) -> None:
    parse_normalized(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_normalized(name)


# normalize_test.go TestParseRepositoryInfo: (familiar, full, ambiguous, domain, path).
REPOSITORY_INFO = [
    ("localhost/fooo", "localhost/fooo", None, "localhost", "fooo"),
    ("localhost/fooo/bar", "localhost/fooo/bar", None, "localhost", "fooo/bar"),
    ("LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", None, "LOCALDOMAIN", "fooo"),
    ("LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", None, "LOCALDOMAIN", "fooo/bar"),
    ("fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io", "fooo/bar"),
    ("ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io", "library/ubuntu"),
    ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", None, "docker.io", "nonlibrary/ubuntu"),
    ("other/library", "docker.io/other/library", None, "docker.io", "other/library"),
    (
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        None,
        "127.0.0.1:8000",
        "private/moonbase",
    ),
    (
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000/privatebase",
        None,
        "127.0.0.1:8000",
        "privatebase",
    ),
    (
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        None,
        "example.com",
        "private/moonbase",
    ),
    ("example.com/privatebase", "example.com/privatebase", None, "example.com", "privatebase"),
    (
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        None,
        "example.com:8000",
        "private/moonbase",
    ),
    (
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        None,
        "example.com:8000",
        "privatebasee",
    ),
    (
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
        "docker.io",
        "library/ubuntu-12.04-base",
    ),
    ("foo", "docker.io/library/foo", "docker.io/foo", "docker.io", "library/foo"),
    ("library/foo/bar", "docker.io/library/foo/bar", None, "docker.io", "library/foo/bar"),
    ("store/foo/bar", "docker.io/store/foo/bar", None, "docker.io", "store/foo/bar"),
    ("Foo/bar", "Foo/bar", None, "Foo", "bar"),
    ("FOO/bar", "FOO/bar", None, "FOO", "bar"),
]


@pytest.mark.parametrize(
    ("spelling", "familiar", "full", "domain", "path"),
    [
        (spelling, familiar, full, domain, path)
        for familiar, full, ambiguous, domain, path in REPOSITORY_INFO
        for spelling in filter(None, (familiar, full, ambiguous))
    ],
)
def test_repository_info(spelling: str, familiar: str, full: str, domain: str, path: str) -> None:
    ref = parse_normalized(spelling)
    assert (ref.familiar_name, str(ref), ref.domain, ref.path) == (familiar, full, domain, path)
    assert ref.name == full


# normalize_test.go TestNormalizedSplitHostname.
@pytest.mark.parametrize(
    ("given", "domain", "path"),
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("localhost/x", "localhost", "x"),
        # A host-looking first element that is no valid host: Go parses it as path.
        ("foo_bar.com/x", "", "foo_bar.com/x"),
    ],
)
def test_split_domain(given: str, domain: str, path: str) -> None:
    ref = parse_normalized(given)
    assert (ref.domain, ref.path) == (domain, path)


# reference_test.go TestReferenceParse, valid cases: (input, name, tag, digest).
PARSED = [
    ("test_com", "docker.io/library/test_com", None, None),
    ("test.com:tag", "docker.io/library/test.com", "tag", None),
    ("test.com:5000", "docker.io/library/test.com", "5000", None),
    ("test.com/repo:tag", "test.com/repo", "tag", None),
    ("test:5000/repo", "test:5000/repo", None, None),
    ("test:5000/repo:tag", "test:5000/repo", "tag", None),
    (f"test:5000/repo@{DIGEST}", "test:5000/repo", None, DIGEST),
    (f"test:5000/repo:tag@{DIGEST}", "test:5000/repo", "tag", DIGEST),
    ("lowercase:Uppercase", "docker.io/library/lowercase", "Uppercase", None),
    (
        "a/" * 127 + "a:tag-puts-this-over-max",
        "docker.io/" + "a/" * 127 + "a",
        "tag-puts-this-over-max",
        None,
    ),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux", None, None),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com/bar/baz/quux",
        "some-long-tag",
        None,
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app",
        "test.example.com",
        None,
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{DIGEST}", "xn--7o8h.com/myimage", "xn--7o8h.com", DIGEST),
    ("foo_bar.com:8080", "docker.io/library/foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com", "8080", None),
    ("192.168.1.1", "docker.io/library/192.168.1.1", None, None),
    ("192.168.1.1:tag", "docker.io/library/192.168.1.1", "tag", None),
    ("192.168.1.1:5000", "docker.io/library/192.168.1.1", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1/repo", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo", "tag", None),
    (f"[2001:db8::1]:5000/repo@{DIGEST}", "[2001:db8::1]:5000/repo", None, DIGEST),
    (f"[2001:db8::1]:5000/repo:tag@{DIGEST}", "[2001:db8::1]:5000/repo", "tag", DIGEST),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000/repo", None, None),
    ("[::1]:5000/repo", "[::1]:5000/repo", None, None),
    ("example.com/" + "a" * 255 + ":tag", "example.com/" + "a" * 255, "tag", None),
    ("busybox:" + "t" * 128, "docker.io/library/busybox", "t" * 128, None),
    ("busybox:_under.score-dash", "docker.io/library/busybox", "_under.score-dash", None),
    (f"host:5000/name:tag@{DIGEST}", "host:5000/name", "tag", DIGEST),
    (f"busybox@sha512:{'a' * 128}", "docker.io/library/busybox", None, f"sha512:{'a' * 128}"),
]


@pytest.mark.parametrize(("given", "name", "tag", "digest"), PARSED)
def test_parse(given: str, name: str, tag: str | None, digest: str | None) -> None:
    ref = parse_normalized(given)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)
    assert str(ref) == name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# Docker's messages, word for word: reference.go, normalize.go and go-digest's digest.go.
ERRORS = [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    (
        "docker/Docker",
        "invalid reference format: repository name (docker/Docker) must be lowercase",
    ),
    ("localhost:5000/Foo:tag", "invalid reference format: repository name (Foo) must be lowercase"),
    (
        "test:5000/Uppercase/lowercase:tag",
        "invalid reference format: repository name (Uppercase/lowercase) must be lowercase",
    ),
    # The first element is uppercase, so it is taken for a host, which must then
    # be valid: Parse's own uppercase check words it differently.
    ("UPPER_CASE/x", "repository name must be lowercase"),
    ("", "invalid reference format"),
    (":justtag", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    (
        IDENTIFIER,
        f"invalid repository name ({IDENTIFIER}), cannot specify 64-byte hexadecimal strings",
    ),
    ("domain/" + "a" * 256 + ":tag", "repository name must not be more than 255 characters"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{HEX64}", "unsupported digest algorithm"),
    (f"validname@sha256:{'F' * 64}", "invalid checksum digest format"),
]


@pytest.mark.parametrize(("given", "message"), ERRORS)
def test_errors_are_dockers(given: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_normalized(given)
    assert str(caught.value) == message


# normalize_test.go TestParseDockerRef.
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        (f"busybox@{BUSYBOX_DIGEST}", f"docker.io/library/busybox@{BUSYBOX_DIGEST}"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
        ("library/busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
        (
            f"gcr.io/library/busybox:latest@{BUSYBOX_DIGEST}",
            f"gcr.io/library/busybox@{BUSYBOX_DIGEST}",
        ),
        ("user/name", "docker.io/user/name:latest"),
        ("index.docker.io/user/name:1.0", "docker.io/user/name:1.0"),
    ],
)
def test_parse_docker_ref(given: str, expected: str) -> None:
    ref = parse_docker_ref(given)
    assert str(ref) == expected
    assert parse_normalized(expected) == ref


# normalize_test.go TestParseReferenceWithTagAndDigest, and familiar forms.
@pytest.mark.parametrize(
    ("given", "familiar"),
    [
        (f"busybox:latest@{BUSYBOX_DIGEST}", f"busybox:latest@{BUSYBOX_DIGEST}"),
        ("docker.io/library/redis:7", "redis:7"),
        ("docker.io/dmcgowan/myapp", "dmcgowan/myapp"),
        ("docker.io/library/foo/bar:1", "library/foo/bar:1"),
        ("localhost:5000/app:dev", "localhost:5000/app:dev"),
        (f"quay.io/org/app@{DIGEST}", f"quay.io/org/app@{DIGEST}"),
    ],
)
def test_familiar_string(given: str, familiar: str) -> None:
    assert parse_normalized(given).familiar_string() == familiar


def test_with_default_tag_only_adds_latest_to_bare_names() -> None:
    bare = parse_normalized("busybox")
    assert bare.tag is None
    assert str(bare.with_default_tag()) == "docker.io/library/busybox:latest"
    tagged = parse_normalized("busybox:1.36")
    assert tagged.with_default_tag() is tagged
    digested = parse_normalized(f"busybox@{DIGEST}")
    assert digested.with_default_tag() is digested


def test_reference_is_a_frozen_value() -> None:
    ref = Reference("docker.io", "library/busybox", "latest")
    assert ref == parse_docker_ref("busybox")
    assert hash(ref) == hash(parse_docker_ref("busybox"))
    with pytest.raises(AttributeError):
        ref.tag = "other"  # type: ignore[misc]


@pytest.mark.parametrize("digest", [DIGEST, f"sha384:{'a' * 96}", f"sha512:{'0' * 128}"])
def test_parse_digest_accepts(digest: str) -> None:
    assert parse_digest(digest) == digest


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("sha256", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        (":" + HEX64, "invalid checksum digest format"),
        ("sha256:" + HEX64[:-1], "invalid checksum digest length"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("md5:" + "a" * 32, "unsupported digest algorithm"),
        ("SHA256:" + HEX64, "invalid checksum digest format"),
    ],
)
def test_parse_digest_refuses(digest: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_digest(digest)
    assert str(caught.value) == message


def test_hostile_input_parses_in_linear_time() -> None:
    # Python's backtracking engine must not blow up where Go's RE2 cannot.
    for evil in ("a" + "-" * 50_000 + "!", "a." * 20_000 + "!", "a/" * 20_000 + "A"):
        with pytest.raises(InvalidParameter):
            parse_normalized(evil)
