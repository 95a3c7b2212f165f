"""USER and COPY --chown by name read the image's /etc/passwd and /etc/group as the
container sees them (openat2 RESOLVE_IN_ROOT): a link that climbs with ".." stops at
the image's root and never reaches the host's files, as with dockerd."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from build_corpus import Case
from buildcheck import classic_builder, write_context
from comparekit import Pair, daemon_pair
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")

# /etc/passwd and /etc/group are links out of the root; inside it they land on /real/*.
# On the host /real/passwd does not exist: an engine that followed them there finds no
# user at all.
HOSTILE = ("FROM busybox\n"
           "RUN mkdir /real && echo 'app:x:1234:2345::/:/bin/sh' > /real/passwd"
           " && echo 'grp:x:2345:app' > /real/group && rm /etc/passwd /etc/group"
           " && ln -s ../../../../../../../../real/passwd /etc/passwd"
           " && ln -s /../../../real/group /etc/group\n"
           "COPY --chown=app:grp a /a\nUSER app\nRUN id > /tmp/id\n")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with classic_builder(), daemon_pair("moor-build-users-", "busybox:latest",
                                        busybox_tar) as pair:
        yield pair


def test_user_files_resolved_in_root(pair: Pair) -> None:
    tag = f"users-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), Case("hostile", HOSTILE, files={"a": "a"}))
        ours, theirs = pair.both("build", "-t", tag, directory, timeout=120)
    try:
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        seen = pair.same("run", "--rm", "--pull=never", tag, "sh", "-c",
                         "stat -c '%u:%g' /a; cat /tmp/id")
        assert seen == 0
        out = pair.moord.docker("run", "--rm", "--pull=never", tag, "cat", "/tmp/id").stdout
        assert out.startswith(b"uid=1234(app) gid=2345(grp)")
    finally:
        pair.both("rmi", "-f", tag)
