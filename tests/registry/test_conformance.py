"""distribution-spec v1.1 conformance, run against ours and the distribution registry alike.

Tests taking ``registry`` run on both, so every assertion there is checked
against the reference implementation; ``moor_registry`` marks what distribution
2.8 does not implement (referrers, tag deletion, a manifest size limit).
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlsplit

import pytest
from registrykit import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Server,
    descriptor,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)

ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


@pytest.fixture
def repo() -> str:
    return f"conformance/r{uuid.uuid4().hex[:10]}"


def _path(location: str) -> str:
    """Location may be absolute (distribution) or relative (ours); both are allowed."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_digest(location: str, digest: str) -> str:
    path = _path(location)
    return path + ("&" if "?" in path else "?") + f"digest={digest}"


def test_base_endpoint(registry: Server) -> None:
    r = registry.request("GET", "/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_blob_get_head_and_ranges(registry: Server, repo: str) -> None:
    data = os.urandom(1000)
    digest = push_blob(registry, repo, data)
    head = registry.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert head.status == 200
    assert head.headers["Content-Length"] == "1000"
    assert head.headers["Docker-Content-Digest"] == digest
    assert registry.request("GET", f"/v2/{repo}/blobs/{digest}").body == data
    part = registry.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert part.body == data[10:20]
    assert part.headers["Content-Range"] == "bytes 10-19/1000"
    if registry.kind == "moor":
        # distribution 2.8 announces the full Content-Length with its 416 and then
        # closes the connection early, so only ours is checked here.
        assert registry.request("GET", f"/v2/{repo}/blobs/{digest}",
                                headers={"Range": "bytes=5000-"}).status == 416


def test_chunked_upload_with_content_range(registry: Server, repo: str) -> None:
    data = os.urandom(300)
    start = registry.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert start.status == 202
    assert start.headers["Docker-Upload-UUID"]
    location = start.headers["Location"]
    first = registry.request("PATCH", _path(location), data[:100],
                             {"Content-Range": "0-99", "Content-Type": "application/octet-stream"})
    assert first.status == 202, first.body
    assert first.headers["Range"] == "0-99"
    status = registry.request("GET", _path(first.headers["Location"]))
    assert status.status == 204
    assert status.headers["Range"] == "0-99"
    if registry.kind == "moor":
        # distribution-spec: a chunk that does not start where the last one ended gets
        # 416; distribution 2.8 ignores Content-Range and appends it (a known deviation).
        gap = registry.request("PATCH", _path(first.headers["Location"]), data[200:],
                               {"Content-Range": "200-299",
                                "Content-Type": "application/octet-stream"})
        assert gap.status == 416
        assert gap.headers["Range"] == "0-99"
    second = registry.request("PATCH", _path(first.headers["Location"]), data[100:],
                              {"Content-Range": "100-299",
                               "Content-Type": "application/octet-stream"})
    assert second.status == 202
    assert second.headers["Range"] == "0-299"
    done = registry.request("PUT", _with_digest(second.headers["Location"], sha256(data)))
    assert done.status == 201
    assert done.headers["Docker-Content-Digest"] == sha256(data)
    assert registry.request("GET", _path(done.headers["Location"])).body == data


def test_put_with_final_chunk_and_cancel(registry: Server, repo: str) -> None:
    data = os.urandom(64)
    location = registry.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    done = registry.request("PUT", _with_digest(location, sha256(data)), data,
                            {"Content-Type": "application/octet-stream"})
    assert done.status == 201
    location = registry.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert registry.request("DELETE", _path(location)).status == 204
    gone = registry.request("GET", _path(location))
    assert gone.status == 404
    assert gone.error_codes() == ["BLOB_UPLOAD_UNKNOWN"]


def test_digest_mismatch_is_digest_invalid(registry: Server, repo: str) -> None:
    location = registry.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = registry.request("PUT", _with_digest(location, sha256(b"other")), b"content",
                         {"Content-Type": "application/octet-stream"})
    assert r.status == 400
    assert r.error_codes() == ["DIGEST_INVALID"]


def test_cross_repository_mount(registry: Server, repo: str) -> None:
    digest = push_blob(registry, repo, os.urandom(100))
    mounted = registry.request("POST", f"/v2/{repo}-b/blobs/uploads/?mount={digest}&from={repo}")
    assert mounted.status == 201
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert registry.request("HEAD", f"/v2/{repo}-b/blobs/{digest}").status == 200
    # Not in the source repository: the registry opens an upload session instead.
    missing = sha256(b"not there")
    fallback = registry.request("POST", f"/v2/{repo}-c/blobs/uploads/?mount={missing}&from={repo}")
    assert fallback.status == 202


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_manifest_by_tag_and_digest(registry: Server, repo: str, media_type: str) -> None:
    data = image_manifest(registry, repo, layers=2, media_type=media_type)
    put = put_manifest(registry, repo, "v1", data, media_type)
    assert put.status == 201, put.body
    digest = put.headers["Docker-Content-Digest"]
    assert digest == sha256(data)
    for ref in ("v1", digest):
        got = registry.request("GET", f"/v2/{repo}/manifests/{ref}",
                               headers={"Accept": ALL_MANIFESTS})
        assert got.status == 200
        assert got.body == data
        assert got.headers["Content-Type"] == media_type
        assert got.headers["Docker-Content-Digest"] == digest
        head = registry.request("HEAD", f"/v2/{repo}/manifests/{ref}",
                                headers={"Accept": ALL_MANIFESTS})
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(data))


@pytest.mark.parametrize(("index_type", "child_type"),
                         [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_of_two_platforms(registry: Server, repo: str, index_type: str,
                                child_type: str) -> None:
    children = []
    for arch in ("amd64", "arm64"):
        data = image_manifest(registry, repo, salt=arch, media_type=child_type)
        assert put_manifest(registry, repo, sha256(data), data, child_type).status == 201
        children.append(descriptor(child_type, data,
                                   platform={"os": "linux", "architecture": arch}))
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type,
                        "manifests": children}).encode()
    assert put_manifest(registry, repo, "multi", index, index_type).status == 201
    got = registry.request("GET", f"/v2/{repo}/manifests/multi",
                           headers={"Accept": ALL_MANIFESTS})
    assert got.headers["Content-Type"] == index_type
    assert got.body == index


def test_manifest_referencing_missing_blob(registry: Server, repo: str) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    push_blob(registry, repo, config)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": descriptor("application/vnd.oci.image.config.v1+json", config),
           "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b"absent")]}
    r = put_manifest(registry, repo, "latest", json.dumps(doc).encode())
    assert r.status == 400
    assert r.error_codes() == ["MANIFEST_BLOB_UNKNOWN"]


def test_manifest_digest_mismatch(registry: Server, repo: str) -> None:
    data = image_manifest(registry, repo)
    r = put_manifest(registry, repo, sha256(b"something else"), data)
    assert r.status == 400
    assert r.error_codes() == ["DIGEST_INVALID"]


def test_tag_list_pagination(registry: Server, repo: str) -> None:
    data = image_manifest(registry, repo)
    tags = ["a", "b", "c", "d", "e"]
    for tag in tags:
        assert put_manifest(registry, repo, tag, data).status == 201
    listing = registry.request("GET", f"/v2/{repo}/tags/list").json()
    # Without `n` distribution 2.8 lists tags in directory order; ours sorts.
    assert (listing["name"], sorted(listing["tags"])) == (repo, tags)
    seen: list[str] = []
    path = f"/v2/{repo}/tags/list?n=2"
    while True:
        page = registry.request("GET", path)
        assert page.status == 200
        seen += page.json()["tags"]
        link = page.headers.get("Link")
        if link is None:
            break
        assert link.endswith('; rel="next"')
        path = _path(link.split(";")[0].strip("<>"))
    assert sorted(seen) == tags
    if registry.kind == "moor":  # distribution 2.8 pages in directory order, not sorted
        assert seen == tags
        assert registry.request("GET", f"/v2/{repo}/tags/list?n=2&last=d").json()["tags"] == [
            "e"]


def test_catalog_pagination(registry: Server, repo: str) -> None:
    data = image_manifest(registry, f"{repo}/x")
    for suffix in ("x", "y", "z"):
        if suffix != "x":
            image_manifest(registry, f"{repo}/{suffix}")
        put_manifest(registry, f"{repo}/{suffix}", "t", data if suffix == "x" else
                     image_manifest(registry, f"{repo}/{suffix}"))
    everything = registry.request("GET", "/v2/_catalog?n=1000").json()["repositories"]
    assert [f"{repo}/x", f"{repo}/y", f"{repo}/z"] == [r for r in everything
                                                       if r.startswith(repo)]
    page = registry.request("GET", f"/v2/_catalog?n=2&last={repo}/w")
    assert page.json()["repositories"] == [f"{repo}/x", f"{repo}/y"]
    assert 'rel="next"' in page.headers["Link"]


def test_unknown_things(registry: Server, repo: str) -> None:
    cases = [
        ("GET", f"/v2/{repo}/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/{sha256(b'x')}", 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/{repo}/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/sha256:abc", 400, "DIGEST_INVALID"),
    ]
    for method, path, status, code in cases:
        r = registry.request(method, path)
        assert (r.status, r.error_codes()) == (status, [code]), path


@pytest.mark.parametrize("reference", ["-bad", ".x", "a" * 129, "x@y", "a%20b"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_manifest_reference_neither_tag_nor_digest(registry: Server, repo: str, method: str,
                                                   reference: str) -> None:
    r = registry.request(method, f"/v2/{repo}/manifests/{reference}")
    assert r.status == 404
    if method == "GET" and r.body.startswith(b"{"):  # distribution: a plain-text 404
        assert r.error_codes() == ["MANIFEST_UNKNOWN"]


def test_delete_manifest_by_digest_and_blob(registry: Server, repo: str) -> None:
    data = image_manifest(registry, repo)
    digest = put_manifest(registry, repo, "gone", data).headers["Docker-Content-Digest"]
    assert registry.request("DELETE", f"/v2/{repo}/manifests/{digest}").status == 202
    r = registry.request("GET", f"/v2/{repo}/manifests/{digest}")
    assert (r.status, r.error_codes()) == (404, ["MANIFEST_UNKNOWN"])
    assert registry.request("GET", f"/v2/{repo}/manifests/gone").status == 404
    layer = json.loads(data)["layers"][0]["digest"]
    assert registry.request("DELETE", f"/v2/{repo}/blobs/{layer}").status == 202
    assert registry.request("HEAD", f"/v2/{repo}/blobs/{layer}").status == 404


# ---------------------------------------------------------------------- ours only


def test_single_post_upload(moor_registry: Server, repo: str) -> None:
    data = os.urandom(500)
    r = moor_registry.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}", data,
                              {"Content-Type": "application/octet-stream"})
    assert r.status == 201
    assert moor_registry.request("GET", _path(r.headers["Location"])).body == data
    bad = moor_registry.request("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(b'x')}", data,
                                {"Content-Type": "application/octet-stream"})
    assert (bad.status, bad.error_codes()) == (400, ["DIGEST_INVALID"])


def test_path_traversal_and_bad_names(moor_registry: Server) -> None:
    # distribution 2.8 answers NAME_UNKNOWN for uppercase names, a 301 for `..` and a
    # 500 for a malformed manifest digest; the spec's codes are these (a fetch of a
    # reference that cannot name a manifest is MANIFEST_UNKNOWN, as for "-bad").
    r = moor_registry.request("GET", "/v2/Conformance/x/tags/list")
    assert (r.status, r.error_codes()) == (400, ["NAME_INVALID"])
    for ref in ("sha256:abc", "md5:" + "0" * 32):
        r = moor_registry.request("GET", f"/v2/conformance/x/manifests/{ref}")
        assert (r.status, r.error_codes()) == (404, ["MANIFEST_UNKNOWN"]), ref
    for path in ("/v2/../../etc/tags/list", "/v2/a/../../b/manifests/latest",
                 "/v2/%2e%2e/x/blobs/uploads/", "/v2/a//b/tags/list", "/v2/-a/tags/list",
                 "/v2/a_/tags/list"):
        r = moor_registry.request("GET" if "uploads" not in path else "POST", path)
        assert (r.status, r.error_codes()) == (400, ["NAME_INVALID"]), path


def test_unknown_upload(moor_registry: Server, repo: str) -> None:
    # distribution 2.8 answers BLOB_UPLOAD_INVALID here (it cannot decode the missing
    # _state token); the spec's code is BLOB_UPLOAD_UNKNOWN.
    for upload_id in (str(uuid.uuid4()), "..", "not-a-uuid"):
        r = moor_registry.request("GET", f"/v2/{repo}/blobs/uploads/{upload_id}")
        assert (r.status, r.error_codes()) == (404, ["BLOB_UPLOAD_UNKNOWN"]), upload_id


def test_delete_tag_keeps_manifest(moor_registry: Server, repo: str) -> None:
    data = image_manifest(moor_registry, repo)
    digest = put_manifest(moor_registry, repo, "t1", data).headers["Docker-Content-Digest"]
    assert moor_registry.request("DELETE", f"/v2/{repo}/manifests/t1").status == 202
    assert moor_registry.request("GET", f"/v2/{repo}/manifests/t1").status == 404
    assert moor_registry.request("GET", f"/v2/{repo}/manifests/{digest}").status == 200


def test_oversized_manifest(moor_registry: Server, repo: str) -> None:
    data = image_manifest(moor_registry, repo, annotations={"pad": "x" * (4 * 1024 * 1024)})
    r = put_manifest(moor_registry, repo, "big", data)
    assert (r.status, r.error_codes()) == (413, ["MANIFEST_INVALID"])


def test_schema1_and_garbage_rejected(moor_registry: Server, repo: str) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": repo, "tag": "x", "fsLayers": []})
    r = put_manifest(moor_registry, repo, "old", schema1.encode(),
                     "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert (r.status, r.error_codes()) == (400, ["MANIFEST_INVALID"])
    r = put_manifest(moor_registry, repo, "junk", b"{not json")
    assert (r.status, r.error_codes()) == (400, ["MANIFEST_INVALID"])


def test_accept_negotiation(moor_registry: Server, repo: str) -> None:
    data = image_manifest(moor_registry, repo)
    put_manifest(moor_registry, repo, "oci", data)
    refused = moor_registry.request("GET", f"/v2/{repo}/manifests/oci",
                                    headers={"Accept": DOCKER_MANIFEST})
    assert (refused.status, refused.error_codes()) == (404, ["MANIFEST_UNKNOWN"])
    assert moor_registry.request("GET", f"/v2/{repo}/manifests/oci",
                                 headers={"Accept": "*/*"}).status == 200


def test_referrers(moor_registry: Server, repo: str) -> None:
    subject = image_manifest(moor_registry, repo)
    subject_digest = put_manifest(moor_registry, repo, "app", subject).headers[
        "Docker-Content-Digest"]
    subject_desc = descriptor(OCI_MANIFEST, subject)
    pushed = {}
    for artifact_type in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        empty = b"{}"
        push_blob(moor_registry, repo, empty)
        doc = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": descriptor("application/vnd.oci.empty.v1+json", empty),
            "layers": [descriptor("application/vnd.oci.empty.v1+json", empty)],
            "subject": subject_desc, "annotations": {"kind": artifact_type}}).encode()
        r = put_manifest(moor_registry, repo, sha256(doc), doc)
        assert r.status == 201
        assert r.headers["OCI-Subject"] == subject_digest
        pushed[artifact_type] = sha256(doc)
    listing = moor_registry.request("GET", f"/v2/{repo}/referrers/{subject_digest}")
    assert listing.headers["Content-Type"].startswith(OCI_INDEX)
    index = listing.json()
    assert {m["digest"] for m in index["manifests"]} == set(pushed.values())
    assert all(m["annotations"]["kind"] == m["artifactType"] for m in index["manifests"])
    filtered = moor_registry.request(
        "GET", f"/v2/{repo}/referrers/{subject_digest}?artifactType=application/vnd.example.sig")
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [
        pushed["application/vnd.example.sig"]]
    # Deleting a referrer removes it from the list; an unknown subject lists nothing.
    moor_registry.request("DELETE", f"/v2/{repo}/manifests/{pushed['application/vnd.example.sig']}")
    assert len(moor_registry.request("GET", f"/v2/{repo}/referrers/{subject_digest}")
               .json()["manifests"]) == 1
    assert moor_registry.request("GET", f"/v2/{repo}/referrers/{sha256(b'z')}").json()[
        "manifests"] == []
    bad = moor_registry.request("GET", f"/v2/{repo}/referrers/sha256:zz")
    assert (bad.status, bad.error_codes()) == (400, ["DIGEST_INVALID"])


def test_metrics_and_access_log(moor_registry: Server, repo: str) -> None:
    digest = push_blob(moor_registry, repo, b"metrics")
    moor_registry.request("GET", f"/v2/{repo}/blobs/{digest}")
    text = moor_registry.request("GET", "/metrics").body.decode()
    assert 'moor_registry_http_requests_total{method="GET",status="200"}' in text
    assert "moor_registry_blobs_stored_total" in text
    lines = [json.loads(line) for line in moor_registry.log().splitlines()
             if line.startswith("{") and '"method"' in line]
    assert any(e["path"] == f"/v2/{repo}/blobs/{digest}" and e["status"] == 200 for e in lines)


def test_malformed_content_range(moor_registry: Server, repo: str) -> None:
    location = moor_registry.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    for bad in ("bytes=0-9", "9-0", "x-y"):
        r = moor_registry.request("PATCH", location, b"0123456789", {"Content-Range": bad})
        assert (r.status, r.error_codes()) == (416, ["BLOB_UPLOAD_INVALID"]), bad
    # A final chunk may come with the closing PUT, Content-Range included.
    assert moor_registry.request("PATCH", location, b"01234", {"Content-Range": "0-4"}).status \
        == 202
    data = b"0123456789"
    r = moor_registry.request("PUT", f"{location}?digest={sha256(data)}", b"56789",
                              {"Content-Range": "5-9"})
    assert r.status == 201
