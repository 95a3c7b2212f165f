"""docker commit and docker diff on moord and a real dockerd, side by side."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from comparekit import Pair, daemon_pair, mask
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-commit-", "busybox:latest", busybox_tar) as pair:
        yield pair


_SCRIPT = ("echo new > /added && echo more >> /etc/passwd && rm /etc/group && "
           "mkdir -p /d/e && touch /d/e/f && rm -rf /home && mkdir /home && touch /home/x")


def test_diff_and_commit(pair: Pair) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    tag = f"committed-{uuid.uuid4().hex[:6]}"
    try:
        pair.same("run", "--name", name, "busybox:latest", "sh", "-c", _SCRIPT)
        # dockerd 20.10 lists them in its map's random order: compare them sorted.
        ours, theirs = (sorted(r.stdout.decode().splitlines()) for r in pair.both("diff", name))
        assert ours == theirs
        pair.same("commit", "-a", "me", "-m", "a message", "-c", 'CMD ["cat", "/added"]',
                  "-c", "ENV A=1", "-c", "EXPOSE 80", name, tag, compare_stdout=False)
        pair.same("run", "--rm", tag)
        pair.same("run", "--rm", tag, "sh", "-c",
                  "ls /etc/group; tail -1 /etc/passwd; ls -R /d /home; echo $A")
        ours, theirs = pair.inspect(tag, ["Author", "Comment", "Config.Cmd", "Config.Env",
                                          "Config.ExposedPorts", "Config.Entrypoint"])
        assert ours == theirs
        for daemon in (pair.moord, pair.dockerd):
            history = daemon.docker("history", "--no-trunc", "--format",
                                    "{{.CreatedBy}}|{{.Comment}}", tag, check=True)
            assert mask(history.stdout).splitlines()[0] == "sh -c " + _SCRIPT + "|a message"
    finally:
        pair.both("rm", "-f", name)
        pair.both("rmi", tag)


def test_errors(pair: Pair) -> None:
    pair.same("diff", "nope-nope")
    pair.same("commit", "nope-nope")
    name = f"c-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("create", "--name", name, "busybox:latest", compare_stdout=False)
        pair.same("diff", name)
        pair.same("commit", "-c", "BOGUS x", name)
        pair.same("commit", name, "UPPER:bad")
    finally:
        pair.both("rm", "-f", name)
