"""Dockerfile builds on moord and on a real dockerd's classic builder, side by side:
the corpus in build_corpus.py built by both, the images' configs and filesystems
compared, the errors compared word for word."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from build_corpus import CASES, ERRORS, Case
from buildcheck import CONFIG_FIELDS, LISTING, classic_builder, listing, write_context
from comparekit import Pair, daemon_pair, mask
from enginekit import Daemon
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")

@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with classic_builder(), daemon_pair("moor-build-", "busybox:latest", busybox_tar) as pair:
        yield pair


def build_both(pair: Pair, case: Case, tag: str) -> tuple:
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        args = ["build", "-t", tag, *case.args]
        if case.dockerfile_name:
            args += ["-f", str(Path(directory) / case.dockerfile_name)]
        return pair.both(*args, directory, timeout=180)


def _images(daemon: Daemon) -> set[str]:
    return set(daemon.docker("images", "-aq", "--no-trunc").stdout.decode().split())


@pytest.fixture(scope="module")
def corpus(request: pytest.FixtureRequest, pair: Pair) -> Iterator[dict[str, tuple[str, Future]]]:
    """The selected corpus cases built on both daemons ahead, two at a time, while the tests
    check the ones built before: case name → (tag, the build's future). The images go at
    the end: removed earlier, an image's parents could go from under a build using them."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_corpus"]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="corpus") as builders:
        built = {}
        for case in selected:
            tag = f"b-{case.name}-{uuid.uuid4().hex[:6]}"
            built[case.name] = (tag, builders.submit(build_both, pair, case, tag))
        yield built
    if built:
        pair.both("rmi", "-f", *(tag for tag, _ in built.values()))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus(pair: Pair, corpus: dict[str, tuple[str, Future]], case: Case) -> None:
    tag, build = corpus[case.name]
    ours, theirs = build.result()
    assert ours.returncode == theirs.returncode == 0, \
        (ours.stdout.decode()[-3000:], ours.stderr.decode(), theirs.stderr.decode())
    mine, real = pair.inspect(tag, CONFIG_FIELDS)
    assert mine == real
    # Intermediate images show with --all only.
    listed = [r.stdout.split() for r in pair.both("images", "-q", "--filter",
                                                  f"reference={tag}")]
    assert len(listed[0]) == len(listed[1]) == 1
    # One history entry per step, the local ones with their image's ID.
    ids = [mask(r.stdout).split() for r in pair.both("history", "--format", "{{.ID}}", tag)]
    assert ids[0] == ids[1]
    if case.listing:
        # As root: the image's USER may not read every directory.
        listings = pair.both("run", "--rm", "--user", "0", "--entrypoint", "sh", tag, "-c",
                             LISTING, timeout=120)
        assert listings[0].returncode == listings[1].returncode == 0, \
            (listings[0].stderr, listings[1].stderr)
        assert listing(listings[0].stdout) == listing(listings[1].stdout)
    if case.run:
        pair.same("run", "--rm", tag, *case.run)


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
def test_errors(pair: Pair, case: Case) -> None:
    tag = f"e-{case.name}-{uuid.uuid4().hex[:6]}"
    before = _images(pair.moord)
    containers = pair.moord.docker("ps", "-aq").stdout
    ours, theirs = build_both(pair, case, tag)
    assert ours.returncode == theirs.returncode != 0
    expected = case.error or mask(theirs.stderr).strip().splitlines()[-1]
    assert mask(ours.stderr).strip().splitlines()[-1] == expected, mask(ours.stdout)
    assert pair.moord.docker("ps", "-aq").stdout == containers
    assert _images(pair.moord) - before == set() or case.leaves_cache


def test_cache_mtime_and_content(pair: Pair) -> None:
    """A touched file (same content) hits the cache; a changed one misses."""
    case = Case("cache", "FROM busybox\nCOPY a /a\nRUN cat /a > /b\n", files={"a": "one"})
    tag = f"c-{uuid.uuid4().hex[:6]}"
    daemon = pair.moord
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        first = daemon.docker("build", "-t", tag, directory, check=True).stdout.decode()
        assert "Using cache" not in first
        os.utime(Path(directory) / "a", (1, 1))
        second = daemon.docker("build", "-t", tag, directory, check=True).stdout.decode()
        assert second.count("Using cache") == 2
        (Path(directory) / "a").write_text("two")
        third = daemon.docker("build", "-t", tag, directory, check=True).stdout.decode()
        assert "Using cache" not in third
        out = daemon.docker("run", "--rm", tag, "cat", "/b", check=True).stdout
        assert out == b"two"
        nocache = daemon.docker("build", "--no-cache", "-t", tag, directory,
                                check=True).stdout.decode()
        assert "Using cache" not in nocache
    pair.both("rmi", "-f", tag)


def test_sdk_build(pair: Pair) -> None:
    import io
    import tarfile

    import docker

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = b"FROM busybox\nARG X=1\nRUN echo built-$X > /x\nCMD [\"cat\", \"/x\"]\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    client = docker.DockerClient(base_url=pair.moord.host, version="1.41")
    try:
        image, logs = client.images.build(fileobj=io.BytesIO(data.getvalue()), custom_context=True,
                                          tag="sdk-built:1", buildargs={"X": "2"}, rm=True)
        assert any("Step 3/4" in (e.get("stream") or "") for e in logs)
        assert client.containers.run("sdk-built:1", remove=True) == b"built-2\n"
        assert json.dumps(image.attrs["Config"]["Cmd"]) == '["cat", "/x"]'
        image.reload()
    finally:
        client.images.remove("sdk-built:1", force=True)
        client.close()


def test_container_config_up_to_api_1_44(pair: Pair) -> None:
    """Image inspect's ContainerConfig (gone from API 1.45) records each step's command as
    dockerd's classic builder does: RUN's with its build args, a config step's as
    `#(nop) ` and the instruction as written, COPY's and WORKDIR's in one argument;
    docker-compose 1.29 reads its Volumes at every recreate. Both configs name the image
    the step started from; a config step records the container dockerd makes for it
    (its id, and the hostname and empty labels its create gives the config)."""
    import docker

    case = Case("container-config", "FROM busybox\nARG X=1\nENV A=1\nRUN echo $X > /x\n"
                "WORKDIR /w\nCOPY f /w/\nVOLUME /data\nEXPOSE 80 53/udp\nCMD [\"cat\", \"/x\"]\n"
                "LABEL a=b\n", files={"f": "f"})
    try:
        ours, theirs = build_both(pair, case, "container-config:1")
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        found = []
        for daemon in (pair.moord, pair.dockerd):
            client = docker.APIClient(base_url=daemon.host, version="1.41")
            try:
                images = [client.inspect_image(step["Id"])
                          for step in client.history("container-config:1")]
            finally:
                client.close()
            for image in images[:-1]:  # the base, imported, has no parent
                assert image["Config"]["Image"] == image["ContainerConfig"]["Image"] \
                    == image["Parent"]
                assert image["ContainerConfig"]["Hostname"] in ("", image["Container"][:12])
            # COPY's content hash covers the tar headers dockerd hashed, not only the bytes.
            found.append(json.loads(re.sub(r"file:[0-9a-f]{64}", "file:<hash>", mask(json.dumps([
                {key: image[key] for key in ("Config", "ContainerConfig", "Container")}
                for image in images]).encode()))))
        assert len(found[0]) == len(found[1])
        for step, (mine, reference) in enumerate(zip(*found, strict=True)):
            differing = {f"{part}.{key}": (mine[part].get(key), reference[part].get(key))
                         for part in ("Config", "ContainerConfig")
                         for key in {*mine[part], *reference[part]}
                         if mine[part].get(key) != reference[part].get(key)}
            assert mine == reference, (step, differing)
    finally:
        pair.both("rmi", "container-config:1")


def test_onbuild_triggers(pair: Pair) -> None:
    parent = Case("onbuild-parent", "FROM busybox\nONBUILD COPY a /from-trigger\n"
                  "ONBUILD RUN echo ran > /ran\n", files={"a": "a"})
    child = Case("onbuild-child", "", files={"a": "child's a"})
    parent_tag, child_tag = (f"{n}-{uuid.uuid4().hex[:6]}" for n in ("p", "c"))
    child.dockerfile = f"FROM {parent_tag}\nENV AFTER=1\n"
    try:
        assert all(r.returncode == 0 for r in build_both(pair, parent, parent_tag))
        ours, theirs = build_both(pair, child, child_tag)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert "# Executing 2 build triggers" in ours.stdout.decode()
        mine, real = pair.inspect(child_tag, CONFIG_FIELDS)
        assert mine == real
        pair.same("run", "--rm", child_tag, "cat", "/from-trigger", "/ran")
    finally:
        pair.both("rmi", "-f", child_tag, parent_tag)


def _leftovers(data_root: str) -> list[str]:
    found = []
    for sub in ("builder/tmp", "snapshots/active"):
        path = os.path.join(data_root, sub)
        found += [f"{sub}/{n}" for n in os.listdir(path)] if os.path.isdir(path) else []
    return found


def test_failed_step_leaves_nothing(pair: Pair) -> None:
    daemon = pair.moord
    case = Case("fails", "FROM busybox\nCOPY a /a\nRUN echo out && exit 5\n", files={"a": "a"})
    before = (daemon.docker("ps", "-aq").stdout, _leftovers(daemon.data_root))
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        result = daemon.docker("build", directory)
    assert result.returncode == 5
    assert mask(result.stderr).strip().splitlines()[-1] == \
        "The command '/bin/sh -c echo out && exit 5' returned a non-zero code: 5"
    assert b"\nout\n" in result.stdout
    assert (daemon.docker("ps", "-aq").stdout, _leftovers(daemon.data_root)) == before


def test_cache_survives_restart(busybox_tar: bytes) -> None:
    from enginekit import start_daemon, stop_daemon

    with tempfile.TemporaryDirectory(prefix="moor-build-restart-") as base:
        case = Case("restart", "FROM busybox\nCOPY a /a\nRUN cp /a /b\nENV X=1\n",
                    files={"a": "a"})
        write_context(Path(base) / "ctx" if (Path(base) / "ctx").mkdir() is None else
                      Path(base), case)
        daemon = start_daemon(base)
        try:
            daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
            first = daemon.docker("build", "-q", os.path.join(base, "ctx"), check=True).stdout
        finally:
            stop_daemon(daemon)
        daemon = start_daemon(base)
        try:
            again = daemon.docker("build", os.path.join(base, "ctx"), check=True).stdout
            assert again.decode().count("Using cache") == 3
            assert first.decode().strip()[7:19] in again.decode()
            pruned = daemon.docker("builder", "prune", "-f")
            assert pruned.returncode == 0, pruned.stderr
            after = daemon.docker("build", os.path.join(base, "ctx"), check=True).stdout
            assert "Using cache" not in after.decode()
        finally:
            daemon.docker("rmi", "-f", *daemon.docker("images", "-aq").stdout.decode().split())
            stop_daemon(daemon)


# BuildKit's Dockerfile features that dockerd's classic builder lacks and moord has:
# checked on moord alone, by what the built image holds.
_BUILDKIT_CASES = [
    ("RUN <<EOF\necho one > /one\necho two >> /one\nEOF\n", "cat /one", "one\ntwo\n"),
    ("ENV W=world\nCOPY <<hello.txt <<\"raw.txt\" /docs/\nhello $W\nhello.txt\n$W\nraw.txt\n",
     "cat /docs/hello.txt /docs/raw.txt", "hello world\n$W\n"),
    ("RUN cat <<-EOT > /f\n\tindented\n\tEOT\n", "cat /f", "indented\n"),
    ("RUN --mount=type=bind,source=a,target=/mnt/a cp /mnt/a /copied\n", "cat /copied",
     "context file"),
    ("COPY --chmod=751 a /a\nCOPY --chmod=600 --chown=1:2 a /b\n",
     "stat -c '%a %u:%g' /a /b", "751 0:0\n600 1:2\n"),
    ("RUN --network=none grep -c : /proc/net/dev > /n\n", "cat /n", "1\n"),
    # A stage the target does not need is skipped (dockerd's classic builder runs it).
    ("RUN exit 1\nFROM busybox AS used\nRUN echo used > /u\n", "cat /u", "used\n"),
    ("RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /seen\n",
     "sh -c 'cat /seen; ls /scratch'", "x\n"),
]


@pytest.mark.parametrize("index", range(len(_BUILDKIT_CASES)))
def test_buildkit_features(pair: Pair, index: int) -> None:
    dockerfile, command, expected = _BUILDKIT_CASES[index]
    case = Case(f"bk{index}", "FROM busybox\n" + dockerfile, files={"a": "context file"})
    tag = f"bk-{uuid.uuid4().hex[:6]}"
    daemon = pair.moord
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        built = daemon.docker("build", "-t", tag, directory)
    try:
        assert built.returncode == 0, built.stdout.decode() + built.stderr.decode()
        out = daemon.docker("run", "--rm", tag, "sh", "-c", command)
        assert out.stdout.decode() == expected, out.stderr
    finally:
        daemon.docker("rmi", "-f", tag)


def test_cache_mount_reuse(pair: Pair) -> None:
    """RUN --mount=type=cache keeps its directory from one build to the next."""
    daemon = pair.moord
    tag = f"cm-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        for n in range(2):
            Path(directory, "Dockerfile").write_text(
                f"FROM busybox\nRUN --mount=type=cache,target=/cache,id=t-{tag} "
                f"echo {n} >> /cache/runs && cat /cache/runs > /seen\n")
            daemon.docker("build", "-t", tag, directory, check=True)
    try:
        out = daemon.docker("run", "--rm", tag, "sh", "-c", "cat /seen; ls /cache")
        assert out.stdout == b"0\n1\n"
    finally:
        daemon.docker("rmi", "-f", tag)


def test_same_inputs_same_layers(pair: Pair) -> None:
    """Built twice without the cache, COPY/ADD/WORKDIR steps make the same layers."""
    daemon = pair.moord
    case = Case("determinism", "FROM busybox\nWORKDIR /app/deep\nCOPY src /app/src\n"
                "COPY a /etc/a\nADD a /new/dir/a\n",
                files={"src/x": "x", "src/sub/y": "y", "a": "a"})
    layers = []
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        write_context(Path(directory), case)
        for _ in range(2):
            image = daemon.docker("build", "-q", "--no-cache", directory,
                                  check=True).stdout.decode().strip()
            layers.append(daemon.docker("inspect", "-f", "{{json .RootFS.Layers}}", image,
                                        check=True).stdout)
            time.sleep(1.1)  # a second later: times must not leak into the layers
    assert layers[0] == layers[1]


def test_add_url(pair: Pair) -> None:
    """ADD of a URL (a server on loopback): the file, its mode, its name."""
    import http.server
    import threading
    from functools import partial

    with tempfile.TemporaryDirectory(prefix="www-") as www:
        Path(www, "file.txt").write_text("served\n")
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=www)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        tag = f"url-{uuid.uuid4().hex[:6]}"
        try:
            case = Case("add-url", f"FROM busybox\nADD {url}/file.txt /dl/\n"
                                   f"ADD {url}/file.txt /renamed\n")
            ours, theirs = build_both(pair, case, tag)
            assert ours.returncode == theirs.returncode == 0, ours.stderr
            pair.same("run", "--rm", tag, "sh", "-c",
                      "stat -c '%n %a %u:%g %s' /dl/file.txt /renamed; cat /renamed")
        finally:
            server.shutdown()
            server.server_close()
            pair.both("rmi", "-f", tag)


def test_independent_stages_in_parallel(pair: Pair) -> None:
    """Two stages that do not use each other build at the same time; the output still
    comes stage by stage, in Dockerfile order."""
    daemon = pair.moord
    # Each stage notes when its RUN began and ended by the host's clock (/proc/uptime is
    # not namespaced): in parallel the two spans overlap, however loaded the machine.
    span = "cut -d' ' -f1 /proc/uptime > /{0}0 && sleep 2 && cut -d' ' -f1 /proc/uptime > /{0}1"
    text = (f"FROM busybox AS a\nRUN {span.format('a')}\n"
            f"FROM busybox AS b\nRUN {span.format('b')}\n"
            "FROM busybox\nCOPY --from=a /a0 /a1 /\nCOPY --from=b /b0 /b1 /\n")
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        Path(directory, "Dockerfile").write_text(text)
        built = daemon.docker("build", "--no-cache", "-t", "parallel:1", directory)
    try:
        assert built.returncode == 0, built.stderr
        seen = daemon.docker("run", "--rm", "parallel:1", "cat", "/a0", "/a1", "/b0", "/b1")
        a0, a1, b0, b1 = (float(v) for v in seen.stdout.split())
        assert a0 < b1 and b0 < a1, (a0, a1, b0, b1)
        steps = [line.split(" : ")[0] for line in built.stdout.decode().splitlines()
                 if line.startswith("Step ")]
        assert steps == [f"Step {n}/7" for n in range(1, 8)]
    finally:
        daemon.docker("rmi", "-f", "parallel:1")


def test_run_resources(pair: Pair) -> None:
    """--memory reaches the RUN containers, as with dockerd."""
    case = Case("resources", "FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                "> /limits 2>/dev/null || cat /sys/fs/cgroup/memory.max > /limits\n",
                args=["--memory", "64m"])
    tag = f"res-{uuid.uuid4().hex[:6]}"
    try:
        ours, theirs = build_both(pair, case, tag)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        pair.same("run", "--rm", tag, "cat", "/limits")
    finally:
        pair.both("rmi", "-f", tag)


def test_intermediate_images_hidden(pair: Pair) -> None:
    tag = f"hidden-{uuid.uuid4().hex[:6]}"
    case = Case("hidden", "FROM busybox\nRUN touch /x\nENV A=1\n")
    try:
        assert all(r.returncode == 0 for r in build_both(pair, case, tag))
        for daemon in (pair.moord, pair.dockerd):
            parent = daemon.docker("inspect", "-f", "{{.Parent}}", tag,
                                   check=True).stdout.decode().strip()
            assert parent.startswith("sha256:")
            shown = set(daemon.docker("images", "-q", "--no-trunc").stdout.decode().split())
            every = set(daemon.docker("images", "-aq", "--no-trunc").stdout.decode().split())
            assert parent not in shown and parent in every
    finally:
        pair.both("rmi", "-f", tag)
