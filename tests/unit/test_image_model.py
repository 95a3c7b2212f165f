"""Pure image models: chain IDs, import changes, manifests, archives, filters."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import pytest

from moorage.daemon.images import filters as image_filters
from moorage.errors import InvalidParameter
from moorage.image.archive import ExportImage, read_archive, write_archive
from moorage.image.changes import apply_changes
from moorage.image.config import chain_ids, digest_of, parse_time
from moorage.image.manifest import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    encode_manifest,
    parse_manifest,
)
from moorage.image.reference import parse_normalized

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_chain_ids_follow_image_spec() -> None:
    # image-spec config.md: ChainID(A|B) = Digest(ChainID(A) + " " + DiffID(B)).
    expected_b = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
    assert chain_ids([A, B]) == [A, expected_b]
    assert chain_ids([]) == []


def test_changes_like_docker_import() -> None:
    settings = apply_changes({}, [
        'CMD ["sh"]', "ENTRYPOINT /bin/sh -c", "ENV A=1 B=2", "ENV C 3 4", "ENV A=9",
        'LABEL a=b c="d e"', "EXPOSE 80 90/udp", 'VOLUME ["/a", "/b"]', "WORKDIR /w",
        "WORKDIR rel", "USER app", "STOPSIGNAL SIGINT", "ONBUILD RUN x"])
    assert settings == {
        "Cmd": ["sh"], "Entrypoint": ["/bin/sh", "-c", "/bin/sh -c"],
        "Env": ["B=2", "C=3 4", "A=9"], "Labels": {"a": "b", "c": "d e"},
        "ExposedPorts": {"80/tcp": {}, "90/udp": {}}, "Volumes": {"/a": {}, "/b": {}},
        "WorkingDir": "/w/rel", "User": "app", "StopSignal": "SIGINT", "OnBuild": ["RUN x"]}


@pytest.mark.parametrize(("change", "message"), [
    ("FROM x", "from is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("LABEL a", "LABEL must have two arguments"),
    ("EXPOSE abc", "invalid containerPort: abc"),
])
def test_changes_errors(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=f"^{re.escape(message)}$"):
        apply_changes({}, [change])


def test_manifest_round_trip_and_media_types() -> None:
    config = Descriptor(OCI_CONFIG, A, 10)
    layer = Descriptor(OCI_LAYER, B, 20)
    parsed = parse_manifest(encode_manifest(config, [layer]))
    assert parsed.config == config and parsed.layers == (layer,)
    bad = json.dumps({"schemaVersion": 2, "config": config.to_json(),
                      "layers": [{**layer.to_json(), "mediaType": "text/plain"}]}).encode()
    with pytest.raises(InvalidParameter, match="unsupported layer media type"):
        parse_manifest(bad)


class _Blobs:
    """A content store in memory, enough for the archive reader and writer."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def ingest(self, stream: io.BufferedIOBase, expected: str | None) -> str:
        data = stream.read()
        digest = digest_of(data)
        if expected is not None and expected != digest:
            raise InvalidParameter("digest mismatch")
        self.blobs[digest] = data
        return digest

    def add(self, data: bytes) -> Descriptor:
        digest = digest_of(data)
        self.blobs[digest] = data
        return Descriptor(OCI_LAYER, digest, len(data))


def test_archive_write_then_read() -> None:
    store = _Blobs()
    layer = store.add(b"layer bytes")
    config = store.add(json.dumps({"rootfs": {"type": "layers",
                                              "diff_ids": [layer.digest]}}).encode())
    manifest = store.add(encode_manifest(config, [layer]))
    image = ExportImage(Descriptor(OCI_MANIFEST, manifest.digest, manifest.size),
                        Descriptor(OCI_CONFIG, config.digest, config.size), (layer,),
                        (parse_normalized("team/app:1"),))
    out = io.BytesIO()
    write_archive([image], lambda d: io.BytesIO(store.blobs[d]), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert {"index.json", "manifest.json", "oci-layout", "repositories"} <= \
            set(tar.getnames())
        manifest_json = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest_json[0]["RepoTags"] == ["team/app:1"]

    fresh = _Blobs()
    found = read_archive(io.BytesIO(out.getvalue()), fresh.ingest, fresh.blobs.__getitem__)
    assert [(f.config, f.layers, f.names) for f in found] == \
        [(config.digest, (layer.digest,), ("team/app:1",))]


def test_archive_blob_with_wrong_digest_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("blobs/sha256/" + "c" * 64)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    store = _Blobs()
    with pytest.raises(InvalidParameter, match="digest mismatch"):
        read_archive(io.BytesIO(out.getvalue()), store.ingest, store.blobs.__getitem__)


def test_reference_filter_patterns() -> None:
    assert image_filters.reference_matches(["busybox"], "busybox:latest")
    assert image_filters.reference_matches(["busy*:lat?st"], "busybox:latest")
    assert not image_filters.reference_matches(["*"], "team/app:1")  # * stops at "/"
    assert image_filters.reference_matches(["team/*"], "team/app:1")
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        image_filters.reference_matches(["[["], "x:1")


def test_timestamps() -> None:
    assert image_filters.timestamp("10m", now=1000.0) == 400.0
    assert image_filters.timestamp("1h30m", now=10000.0) == 4600.0
    assert image_filters.timestamp("1700000000") == 1700000000.0
    assert image_filters.timestamp("2024-01-02T03:04:05Z") == parse_time("2024-01-02T03:04:05Z")
    with pytest.raises(InvalidParameter, match="failed to parse value as time or duration"):
        image_filters.timestamp("garbage")
    assert parse_time("2026-11-27T22:04:17.779933304Z") == pytest.approx(1795817057.7799333)
