"""BuildKit as the reference for the Dockerfile features dockerd's classic builder lacks.

Debian's docker 20.10 CLI has BuildKit built in: `DOCKER_BUILDKIT=1 /usr/bin/docker build`
against the reference dockerd runs the Dockerfile frontend compiled into dockerd, with
nothing to pull as long as the Dockerfile has no `# syntax=` line and its base images are
already in that dockerd. That frontend (Dockerfile syntax 1.2) has RUN --mount and
COPY --chmod and skips the stages the target does not need; RUN --network, heredocs,
COPY --link, --exclude and --parents came later and stay checked on moord alone
(test_build.py). The reference dockerd runs in a network
namespace of its own with no route out, so an unexpected pull fails instead of reaching
a registry. Each case is built by moord (classic API) and by BuildKit; the configs and
filesystems must be the same."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from build_corpus import Case
from buildcheck import CONFIG_FIELDS, LISTING, classic_builder, listing, write_context
from comparekit import Pair, daemon_pair
from peers import Dockerd, dockerd_available

BUILDKIT_CLI = "/usr/bin/docker"  # Debian's docker.io 20.10: BuildKit in the client

pytestmark = pytest.mark.skipif(not (dockerd_available() and os.access(BUILDKIT_CLI, os.X_OK)),
                                reason="needs dockerd and Debian's docker 20.10 CLI")

B = "FROM busybox\n"
CASES = [
    Case("mount-bind-context", B + "RUN --mount=type=bind,source=a,target=/mnt/a "
         "cp /mnt/a /copied\n", files={"a": "context file"}),
    Case("mount-bind-stage", "FROM busybox AS tools\nRUN echo tool > /tool\n" + B +
         "RUN --mount=type=bind,from=tools,source=/tool,target=/t cp /t /got\n"
         "RUN --mount=from=tools,target=/tools,rw touch /tools/scratch && ls /tools > /ls\n"),
    Case("mount-stubs", B + "RUN --mount=type=bind,source=a,target=/new/deep/file "
         "--mount=type=bind,source=d,target=/newdir/d --mount=type=tmpfs,target=/t1/t2 "
         "--mount=type=cache,target=/cc/c2 cat /new/deep/file > /seen\n",
         files={"a": "a", "d/x": "x"}),
    Case("mount-bind-rw-discarded", B + "RUN --mount=type=bind,target=/ctx,rw "
         "echo changed > /ctx/a && cat /ctx/a > /seen\nCOPY a /copied\n",
         files={"a": "as sent"}),
    Case("mount-tmpfs", B + "RUN --mount=type=tmpfs,target=/scratch touch /scratch/x "
         "&& ls /scratch > /seen\n"),
    Case("mount-cache", B + "RUN --mount=type=cache,target=/var/cache/app,id=bk-{tag} "
         "echo once >> /var/cache/app/runs && cat /var/cache/app/runs > /seen\n"),
    Case("copy-chmod", B + "COPY --chmod=751 a /a\nCOPY --chmod=600 --chown=1:2 a /b\n"
         "COPY --chmod=640 d /d\n", files={"a": "a", "d/x": "x", "d/sub/y": "y"}),
    Case("add-chmod", B + "ADD --chmod=600 a /a\nADD --chmod=755 d /d/\n",
         files={"a": "a", "d/x": "x"}),
    Case("platform-args", B + "ARG TARGETPLATFORM\nARG TARGETOS\nARG BUILDPLATFORM\n"
         "RUN echo $TARGETPLATFORM $TARGETOS $BUILDPLATFORM > /platform\n"),
    Case("unneeded-stage-skipped", "FROM busybox AS broken\nRUN exit 1\n"
         "FROM busybox AS used\nRUN echo used > /u\n"),
    Case("target-skips-later", "FROM busybox AS first\nRUN touch /first\n"
         "FROM busybox AS second\nRUN exit 1\n", args=["--target", "first"]),
]


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with classic_builder(), daemon_pair("moor-build-bk-", "busybox:latest", busybox_tar,
                                        networking=True) as pair:
        yield pair


def buildkit(dockerd: Dockerd, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`docker build` with the 20.10 CLI's BuildKit against the reference dockerd."""
    env = {**os.environ, "DOCKER_HOST": dockerd.host, "DOCKER_BUILDKIT": "1",
           "DOCKER_CONFIG": os.path.join(dockerd.data_root, "..", "docker-config")}
    return subprocess.run([BUILDKIT_CLI, "build", "--progress=plain", *args], env=env,
                          capture_output=True, timeout=timeout)


def build_both(pair: Pair, case: Case, tag: str) -> tuple[subprocess.CompletedProcess, ...]:
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        args = ["-t", tag, *case.args, directory]
        with ThreadPoolExecutor(1) as pool:  # side by side
            theirs = pool.submit(buildkit, pair.dockerd, *args)
            return pair.moord.docker("build", *args, timeout=120), theirs.result()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_as_buildkit(pair: Pair, case: Case) -> None:
    tag = f"bk-{case.name}-{uuid.uuid4().hex[:6]}"
    case = Case(case.name, case.dockerfile.replace("{tag}", tag), case.files, args=case.args)
    try:
        ours, theirs = build_both(pair, case, tag)
        assert ours.returncode == theirs.returncode == 0, \
            (ours.stdout.decode()[-2000:], ours.stderr.decode(), theirs.stderr.decode()[-3000:])
        assert b"pull" not in theirs.stderr.lower()
        mine, real = pair.inspect(tag, CONFIG_FIELDS)
        assert mine == real
        listings = pair.both("run", "--rm", "--pull=never", "--user", "0", "--entrypoint",
                             "sh", tag, "-c", LISTING, timeout=120)
        assert listings[0].returncode == listings[1].returncode == 0, listings[1].stderr
        assert listing(listings[0].stdout) == listing(listings[1].stdout)
    finally:
        pair.both("rmi", "-f", tag)


def test_cache_mount_kept_between_builds(pair: Pair) -> None:
    """The second build sees what the first left in the cache mount, on both."""
    tag = f"bk-cache-{uuid.uuid4().hex[:6]}"
    seen = []
    try:
        for n in range(2):
            case = Case("cache", B + f"RUN --mount=type=cache,target=/c,id=kept-{tag} "
                        f"echo {n} >> /c/runs && cat /c/runs > /seen\n")
            ours, theirs = build_both(pair, case, tag)
            assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        for daemon in (pair.moord, pair.dockerd):
            seen.append(daemon.docker("run", "--rm", "--pull=never", tag, "cat",
                                      "/seen").stdout)
        assert seen[0] == seen[1] == b"0\n1\n"
    finally:
        pair.both("rmi", "-f", tag)


def test_bound_file_change_reruns(pair: Pair) -> None:
    """A RUN step that bind-mounts a context file runs again when its content changes."""
    tag = f"bk-bound-{uuid.uuid4().hex[:6]}"
    try:
        for content in ("one", "two"):
            case = Case("bound", B + "RUN --mount=source=a,target=/a cat /a > /seen\n",
                        files={"a": content})
            ours, theirs = build_both(pair, case, tag)
            assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
            pair.same("run", "--rm", "--pull=never", tag, "cat", "/seen")
        assert pair.moord.docker("run", "--rm", "--pull=never", tag, "cat",
                                 "/seen").stdout == b"two"
    finally:
        pair.both("rmi", "-f", tag)
