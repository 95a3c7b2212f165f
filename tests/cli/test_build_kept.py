"""moor build with moord's kept build contexts (docs/architecture.md, "Kept build
contexts"): a rebuild sends only what changed, and builds exactly what the docker
CLI's whole-tar upload builds."""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from clikit import Clis
from enginekit import Daemon

from moorage.client.api import Client
from moorage.client.endpoint import Endpoint
from moorage.client.errors import APIError

_DOCKERFILE = ("FROM busybox\nCOPY data /data\nCOPY src /src\n"
               "RUN cat /src/main.txt > /copy\nLABEL kept=1\n")


def _built(clis: Clis, cli: str, context: Path) -> tuple[str, str]:
    """The build's output and image ID, by `moor build` or the docker CLI."""
    done = getattr(clis, cli)("build", "-t", "kept-test", str(context), timeout=180,
                              DOCKER_BUILDKIT="0")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    short = re.search(r"Successfully built ([0-9a-f]{12})", out)
    assert short, out
    return out, short.group(1)


def _sent(out: str) -> str:
    found = re.search(r"Sending build context to the daemon\s+(\S+)", out)
    assert found, out
    return found.group(1)


def _same_copies(clis: Clis, context: Path, image_id: str) -> None:
    """The files `image_id` copied, times included, are those of a build from the
    docker CLI's tar without the cache: the same COPY layers (the RUN's holds the time
    it ran)."""
    uncached = clis.docker("build", "-q", "--no-cache", str(context), timeout=180,
                           DOCKER_BUILDKIT="0")
    assert uncached.returncode == 0, uncached.stderr
    other = uncached.stdout.decode().strip()
    layers = [json.loads(clis.docker("inspect", "-f", "{{json .RootFS.Layers}}",
                                     image).stdout)[:3] for image in (image_id, other)]
    clis.docker("rmi", other)
    assert layers[0] == layers[1]


def test_rebuilds_send_changes_and_match_the_tar(moord_clis: Clis, moord: Daemon,
                                                 tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    (context / "data").mkdir(parents=True)
    (context / "src").mkdir()
    for name in ("a", "b"):
        (context / "data" / f"{name}.bin").write_bytes(os.urandom(256 << 10))
    (context / "src" / "main.txt").write_text("v0\n")
    os.symlink("main.txt", context / "src" / "link")
    (context / "Dockerfile").write_text(_DOCKERFILE)
    kept = Path(moord.data_root) / "builder" / "contexts"
    try:
        out, first = _built(moord_clis, "moor", context)
        assert _sent(out).endswith("kB")
        # The docker CLI's tar upload hits the same cache: the same cache keys.
        assert _built(moord_clis, "docker", context)[1] == first
        out, again = _built(moord_clis, "moor", context)
        assert (again, _sent(out)) == (first, "1.024kB")  # the tar's end, no member

        (context / "src" / "main.txt").write_text("v1\n")
        out, changed = _built(moord_clis, "moor", context)
        steps = out.split("Step ")[1:]
        assert [("Using cache" in s) for s in steps] == [False, True, False, False, False]
        assert float(_sent(out)[:-2]) < 10  # the file and its directory, not the data
        tar_out, by_tar = _built(moord_clis, "docker", context)
        assert by_tar == changed != first
        assert tar_out.count("Using cache") == 4
        _same_copies(moord_clis, context, changed)

        (context / "data" / "b.bin").unlink()
        (context / "data" / "c.bin").write_bytes(b"new")
        (context / "src" / "link").unlink()
        kept_id = _built(moord_clis, "moor", context)[1]
        assert _built(moord_clis, "docker", context)[1] == kept_id
        _same_copies(moord_clis, context, kept_id)

        df = moord_clis.docker("system", "df", "--format", "{{.Type}}={{.TotalCount}}")
        counts = dict(line.split("=") for line in df.stdout.decode().splitlines())
        assert int(counts["Build Cache"]) >= 1  # other tests' builds may have theirs
        pruned = moord_clis.moor("builder", "prune", "-f")
        assert pruned.returncode == 0, pruned.stderr
        assert list(kept.iterdir()) == []
    finally:
        moord_clis.docker("rmi", "-f", "kept-test")


def test_a_cut_transfer_is_not_trusted(moord: Daemon) -> None:
    client = Client(Endpoint(moord.host))
    manifest = {"key": "test-host:/cut", "entries": [["f", [0o100644, 5, 1, ""]]]}
    assert client.post("/moorage/build/context", body=manifest) == {"Needed": ["f"]}
    member = tarfile.TarInfo("f")
    member.size = 5
    framed = json.dumps({**manifest, "sent": ["f"]}).encode()
    body = len(framed).to_bytes(8, "big") + framed + member.tobuf() + b"ab"
    with pytest.raises(APIError) as cut:
        list(client.stream_json("POST", "/moorage/build", {"dockerfile": "f"},
                                chunks=iter((body,))))
    assert cut.value.status == 400
    assert client.post("/moorage/build/context", body=manifest) == {"Needed": ["f"]}
    with pytest.raises(APIError) as bad:
        client.post("/moorage/build/context", body={"key": "", "entries": []})
    assert bad.value.status == 400


def test_a_manifest_never_reaches_through_a_link(moord: Daemon, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("kept")
    client = Client(Endpoint(moord.host))
    key = f"test-host:{tmp_path}"

    def send(entries: list[list[object]], members: list[tarfile.TarInfo]) -> None:
        framed = json.dumps({"key": key, "entries": entries,
                             "sent": [m.name for m in members]}).encode()
        tar = b"".join(m.tobuf() for m in members) + bytes(1024)
        list(client.stream_json("POST", "/moorage/build", {"dockerfile": "Dockerfile"},
                                chunks=iter((len(framed).to_bytes(8, "big") + framed + tar,))))

    link = tarfile.TarInfo("lnk")
    link.type, link.linkname = tarfile.SYMTYPE, str(outside)
    link_entry = ["lnk", [0o120777, 0, 1, str(outside)]]
    with pytest.raises(APIError, match="Cannot locate specified Dockerfile"):
        send([link_entry], [link])  # the copy is kept, though it holds no Dockerfile
    with pytest.raises(APIError) as refused:
        send([link_entry, ["lnk/victim", None]], [link, tarfile.TarInfo("lnk/victim")])
    assert refused.value.status == 400
    assert (outside / "victim").read_text() == "kept"
