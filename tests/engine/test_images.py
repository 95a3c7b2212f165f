"""Image endpoints through the real docker CLI and SDK, side by side with a real dockerd.

dockerd is started once for the module (tests/peers.py); where both engines get
the same command, their answers (error messages, RootFS.Layers, Config, Size)
are compared rather than written down.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd

from moorage.devkit import busybox


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def api(socket_path: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = _UnixConnection(socket_path)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def ok_bytes(result: subprocess.CompletedProcess) -> bytes:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def err(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout.decode()
    return result.stderr.decode().strip()


def inspect(engine: Daemon | Dockerd, name: str) -> dict:
    return json.loads(ok(engine.docker("image", "inspect", name)))[0]


def check(moord: Daemon, repair: bool = False) -> dict:
    status, body = api(moord.socket, "POST" if repair else "GET",
                       "/moor/system/check" + ("?repair=1" if repair else ""))
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("bbroot")
    busybox.build_rootfs(str(root / "rootfs"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(root / "rootfs"), arcname=".")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    if not dockerd_available():
        pytest.skip("dockerd is not installed")
    daemon = start_dockerd(str(tmp_path_factory.mktemp("dockerd")))
    try:
        yield daemon
    finally:
        stop_dockerd(daemon)


@pytest.fixture(scope="module")
def multi_archive(dockerd: Dockerd, rootfs_tar: bytes, tmp_path_factory: pytest.TempPathFactory,
                  ) -> bytes:
    """A 3-layer image built by dockerd, with a whiteout and an opaque directory,
    as dockerd's `docker save` writes it."""
    ok(dockerd.docker("import", "-c", 'CMD ["sh"]', "-", "bbase:1", input=rootfs_tar))
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "Dockerfile").write_text(
        "FROM bbase:1\n"
        "RUN rm -rf /etc/group /home && mkdir -p /data && echo old > /data/f\n"
        "LABEL a=b\nENV X=1\n"
        "RUN rm -rf /data && mkdir /data && echo new > /data/g\n")
    env_build = ["build", "--network", "none", "-q", "-t", "multi:1", str(ctx)]
    result = subprocess.run(["env", "DOCKER_BUILDKIT=0", "/usr/local/bin/docker", *env_build],
                            env={**os.environ, "DOCKER_HOST": dockerd.host},
                            capture_output=True, timeout=120)
    ok(result)
    return ok_bytes(dockerd.docker("save", "multi:1", timeout=60))


@pytest.fixture
def imported(moord: Daemon, rootfs_tar: bytes) -> Iterator[str]:
    """A busybox image imported into moord as test-bb:1, removed afterwards."""
    image_id = ok(moord.docker("import", "-c", 'CMD ["sh"]', "-c", "ENV A=b", "-c", "LABEL k=v",
                               "-", "test-bb:1", input=rootfs_tar)).strip()
    yield image_id
    moord.docker("rmi", "-f", image_id)


# --- import, inspect, history --------------------------------------------------------


def test_import_matches_dockerd(moord: Daemon, dockerd: Dockerd, rootfs_tar: bytes,
                                imported: str) -> None:
    ok(dockerd.docker("import", "-c", 'CMD ["sh"]', "-c", "ENV A=b", "-c", "LABEL k=v", "-",
                      "test-bb:1", input=rootfs_tar))
    ours, theirs = inspect(moord, "test-bb:1"), inspect(dockerd, "test-bb:1")
    diff_id = "sha256:" + hashlib.sha256(rootfs_tar).hexdigest()
    assert ours["RootFS"] == theirs["RootFS"] == {"Type": "layers", "Layers": [diff_id]}
    for key in ("Config", "Size", "Comment", "RepoTags", "RepoDigests", "Parent", "Os",
                "Architecture"):
        assert ours[key] == theirs[key], key
    assert ours["Config"]["Cmd"] == ["sh"] and ours["Config"]["Env"] == ["A=b"]
    assert ours["Id"] == imported
    graph = ours["GraphDriver"]
    assert graph["Name"] == "overlay2"
    assert os.path.isfile(os.path.join(graph["Data"]["UpperDir"], "bin/busybox"))
    assert ours["Metadata"]["LastTagTime"].endswith("Z")
    history = json.loads(ok(moord.docker("history", "--format", "json", "--no-trunc",
                                         "test-bb:1")).splitlines()[0])
    assert history["Comment"] == "Imported from -" and history["ID"] == imported
    ok(dockerd.docker("rmi", "test-bb:1"))


def test_import_changes(moord: Daemon, rootfs_tar: bytes) -> None:
    image_id = ok(moord.docker(
        "import", "-c", "EXPOSE 80 90/udp", "-c", "VOLUME /v", "-c", "WORKDIR /w",
        "-c", "WORKDIR rel", "-c", "USER app", "-c", "ENTRYPOINT /bin/sh -c",
        "-c", "ENV C 3 4", "-c", "STOPSIGNAL SIGINT", "-m", "hello", "-",
        input=rootfs_tar)).strip()
    try:
        config = inspect(moord, image_id)["Config"]
        assert config["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
        assert config["Volumes"] == {"/v": {}} and config["WorkingDir"] == "/w/rel"
        assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh -c"]
        assert config["Env"] == ["C=3 4"] and config["User"] == "app"
        assert config["StopSignal"] == "SIGINT"
        assert inspect(moord, image_id)["Comment"] == "hello"
        assert err(moord.docker("import", "-c", "BOGUS x", "-", input=rootfs_tar)) == \
            "Error response from daemon: bogus is not a valid change command"
        assert "ENV must have two arguments" in err(
            moord.docker("import", "-c", "ENV A", "-", input=rootfs_tar))
    finally:
        ok(moord.docker("rmi", image_id))


# --- list, tag, remove ----------------------------------------------------------------


def test_images_list_and_filters(moord: Daemon, imported: str) -> None:
    ok(moord.docker("tag", "test-bb:1", "other/thing:2"))
    assert ok(moord.docker("images", "-q", "--no-trunc", "test-bb")).split() == [imported]
    refs = ok(moord.docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                           "--filter", "reference=other/*")).split()
    assert refs == ["other/thing:2"]
    assert imported in ok(moord.docker("images", "-q", "--no-trunc", "--filter", "label=k=v"))
    assert ok(moord.docker("images", "-q", "--filter", "label=k=nope")).strip() == ""
    # The session's daemon is shared: other tests may leave dangling images of their own.
    dangling = ok(moord.docker("images", "-q", "--no-trunc", "--filter", "dangling=true"))
    assert imported not in dangling.split()
    digests = ok(moord.docker("images", "--digests", "--format", "{{.Digest}}", "test-bb"))
    assert digests.split() == ["<none>"]
    status, body = api(moord.socket, "GET", '/images/json?filters={"bogus":["x"]}')
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'bogus'"})
    ok(moord.docker("rmi", "other/thing:2"))


def test_missing_and_invalid_names_match_dockerd(moord: Daemon, dockerd: Dockerd) -> None:
    for args in (("rmi", "nosuch"), ("rmi", "a b"), ("history", "nosuch"),
                 ("tag", "nosuch", "x")):
        assert err(moord.docker(*args)) == err(dockerd.docker(*args)), args
    # reference.py speaks distribution/reference v0.6, which names the repository
    # in this message; dockerd 20.10 predates that.
    assert err(moord.docker("rmi", "Bad:Ref")) == ("Error response from daemon: invalid "
        "reference format: repository name (library/Bad) must be lowercase")
    status, body = api(moord.socket, "GET", "/images/nosuch/json")
    assert status == 404 and json.loads(body)["message"] == "No such image: nosuch:latest"


def test_tag_and_remove(moord: Daemon, dockerd: Dockerd, imported: str) -> None:
    ok(moord.docker("tag", imported, "test-bb:2"))
    status, body = api(moord.socket, "POST", "/images/test-bb:1/tag?repo=Bad")
    assert status == 400 and "must be lowercase" in json.loads(body)["message"]
    status, body = api(moord.socket, "POST", "/images/test-bb:1/tag?repo=x&tag=a:b")
    assert (status, json.loads(body)["message"]) == (400, "invalid tag format")
    # Two tags: removing by ID needs force, removing a tag only untags.
    short = imported.removeprefix("sha256:")[:12]
    assert err(moord.docker("rmi", short)) == (
        f"Error response from daemon: conflict: unable to delete {short} (must be forced) "
        "- image is referenced in multiple repositories")
    assert ok(moord.docker("rmi", "test-bb:2")).strip() == "Untagged: test-bb:2"
    assert inspect(moord, imported)["RepoTags"] == ["test-bb:1"]


def test_remove_deletes_layers(moord: Daemon, rootfs_tar: bytes) -> None:
    image_id = ok(moord.docker("import", "-", "lonely:1", input=rootfs_tar)).strip()
    layer = inspect(moord, image_id)["RootFS"]["Layers"][0]
    lines = ok(moord.docker("rmi", "lonely:1")).splitlines()
    assert lines[:2] == ["Untagged: lonely:1", f"Deleted: {image_id}"]
    # The layer goes unless another image still stands on it.
    assert lines[2:] in ([], [f"Deleted: {layer}"])
    assert check(moord)["Clean"]


def test_prune(moord: Daemon, rootfs_tar: bytes) -> None:
    dangling = ok(moord.docker("import", "-", input=rootfs_tar)).strip()
    assert dangling in ok(moord.docker("images", "-q", "--no-trunc", "-f", "dangling=true"))
    out = ok(moord.docker("image", "prune", "-f"))
    assert f"deleted: {dangling}" in out
    assert "Total reclaimed space" in out
    status, body = api(moord.socket, "POST", '/images/prune?filters={"until":["garbage"]}')
    assert status == 400 and "failed to parse value as time or duration" in body.decode()


# --- save and load --------------------------------------------------------------------


def test_save_load_round_trip(moord: Daemon, imported: str) -> None:
    saved = ok_bytes(moord.docker("save", "test-bb:1"))
    ok(moord.docker("rmi", "test-bb:1"))
    assert ok(moord.docker("load", input=saved)).strip() == "Loaded image: test-bb:1"
    assert inspect(moord, "test-bb:1")["Id"] == imported
    # By ID: no tags in the archive, and load says which ID it loaded.
    by_id = ok_bytes(moord.docker("save", imported))
    ok(moord.docker("rmi", "test-bb:1"))
    assert ok(moord.docker("load", input=by_id)).strip() == f"Loaded image ID: {imported}"
    ok(moord.docker("tag", imported, "test-bb:1"))


def test_dockerd_archive_loads_into_moord(moord: Daemon, dockerd: Dockerd,
                                          multi_archive: bytes) -> None:
    assert ok(moord.docker("load", input=multi_archive)).strip() == "Loaded image: multi:1"
    try:
        ours, theirs = inspect(moord, "multi:1"), inspect(dockerd, "multi:1")
        for key in ("Id", "RootFS", "Config", "Size", "Created"):
            assert ours[key] == theirs[key], key
        # The whiteout and the opaque directory became overlayfs's own.
        dirs = [ours["GraphDriver"]["Data"]["UpperDir"],
                *ours["GraphDriver"]["Data"]["LowerDir"].split(":")]
        assert os.getxattr(os.path.join(dirs[0], "data"), "trusted.overlay.opaque") == b"y"
        home = os.stat(os.path.join(dirs[1], "home"), follow_symlinks=False)
        assert os.major(home.st_rdev) == 0 and os.minor(home.st_rdev) == 0
        history = ok(moord.docker("history", "-q", "multi:1")).split()
        assert len(history) == len(ok(dockerd.docker("history", "-q", "multi:1")).split())
        # Same archive from moord, loaded back into dockerd: same image.
        saved = ok_bytes(moord.docker("save", "multi:1"))
        ok(dockerd.docker("rmi", "multi:1"))
        assert "Loaded image: multi:1" in ok(dockerd.docker("load", input=saved))
        assert inspect(dockerd, "multi:1")["RootFS"] == ours["RootFS"]
        assert check(moord)["Problems"] == []
    finally:
        moord.docker("rmi", "multi:1")


def test_oci_layout_without_manifest_json(moord: Daemon, imported: str) -> None:
    saved = ok_bytes(moord.docker("save", "test-bb:1"))
    stripped = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(saved)) as src, \
            tarfile.open(fileobj=stripped, mode="w") as dst:
        for member in src:
            if member.name not in ("manifest.json", "repositories"):
                dst.addfile(member, src.extractfile(member) if member.isreg() else None)
    ok(moord.docker("tag", "test-bb:1", "oci/copy:1"))
    ok(moord.docker("rmi", "test-bb:1", "oci/copy:1"))
    assert ok(moord.docker("load", input=stripped.getvalue())).strip() == \
        "Loaded image: test-bb:1"


def test_docker_sdk(moord: Daemon, imported: str) -> None:
    import docker

    client = docker.DockerClient(base_url=moord.host)
    try:
        assert "test-bb:1" in [t for i in client.images.list() for t in i.tags]
        image = client.images.get("test-bb:1")
        assert image.id == imported and image.labels == {"k": "v"}
        data = b"".join(image.save(named=True))
        client.images.remove("test-bb:1")
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [imported]
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("nosuch")
    finally:
        client.close()


# --- bad input and the store check ------------------------------------------------------


def _archive(layer: bytes, config_extra: dict | None = None) -> bytes:
    """A one-layer docker-archive (legacy layout) around ``layer``."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         **(config_extra or {})}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["hostile:1"],
                            "Layers": ["l/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("l/layer.tar", layer), (config_name, config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _layer(name: str, data: bytes = b"x") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_hostile_layer_is_refused(moord: Daemon, tmp_path: Path) -> None:
    before = check(moord)
    status, body = api(moord.socket, "POST", "/images/load",
                       _archive(_layer("../../../../../../tmp/moor-escaped")))
    assert status == 400, body
    assert json.loads(body)["message"].startswith("layer: ")
    assert not os.path.exists("/tmp/moor-escaped")
    status, _ = api(moord.socket, "GET", "/images/hostile:1/json")
    assert status == 404
    after = check(moord)
    assert after["Problems"] == [] and after["Orphans"] == before["Orphans"]
    assert not [n for n in os.listdir(os.path.join(moord.data_root, "tmp"))
                if n.startswith(("ingest-", "unpack-"))]


def test_malformed_archives(moord: Daemon) -> None:
    for body, words in ((b"garbage" * 100, "invalid archive"),
                        (_layer("nothing.txt"), "neither manifest.json nor index.json"),
                        (_archive(_layer("ok"), {"rootfs": {"type": "layers",
                                                            "diff_ids": []}}),
                         "layers length mismatch")):
        # quiet=0 (a terminal's progress) too: nothing was streamed yet.
        for url in ("/images/load", "/images/load?quiet=0"):
            status, answer = api(moord.socket, "POST", url, body)
            assert status == 400 and words in json.loads(answer)["message"], answer
    assert check(moord)["Problems"] == []


def test_pull_from_unreachable_registry(moord: Daemon) -> None:
    # Nothing streamed yet: a plain 500, as dockerd answers (test_distribution.py has the rest).
    status, body = api(moord.socket, "POST", "/images/create?fromImage=127.0.0.1:1/bb&tag=x")
    assert status == 500 and "connection refused" in json.loads(body)["message"]


def test_store_check_repairs_orphans(moord: Daemon) -> None:
    blob = b"an orphan"
    path = os.path.join(moord.data_root, "content/blobs/sha256", hashlib.sha256(blob).hexdigest())
    Path(path).write_bytes(blob)
    os.mkdir(os.path.join(moord.data_root, "tmp", "unpack-leftover"))
    report = check(moord)
    assert not report["Clean"] and report["Problems"] == []
    assert f"blob sha256:{hashlib.sha256(blob).hexdigest()}" in report["Orphans"]
    assert "tmp/unpack-leftover" in report["Orphans"]
    repaired = check(moord, repair=True)
    assert "tmp/unpack-leftover" in repaired["Removed"]
    assert not os.path.exists(path)
    assert check(moord)["Clean"]


def test_import_from_url(moord: Daemon, rootfs_tar: bytes) -> None:
    import gzip
    import http.server
    import threading

    payload = gzip.compress(rootfs_tar)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/rootfs.tar.gz"
        image_id = ok(moord.docker("import", url, "from-url:1")).strip()
        image = inspect(moord, "from-url:1")
        assert image["Comment"] == f"Imported from {url}"
        assert image["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(rootfs_tar).hexdigest()]
        ok(moord.docker("rmi", image_id))
    finally:
        server.shutdown()
        server.server_close()
