"""skopeo (containers/image) against our registry: copy both ways, inspect, --all indexes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrykit import OCI_INDEX, Server, skopeo, write_oci_layout

TLS_OFF = ("--src-tls-verify=false", "--dest-tls-verify=false")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("layouts")
    single, multi = str(base / "single"), str(base / "multi")
    yield {"single": single, "single_digest": write_oci_layout(single, [("linux", "amd64")]),
           "multi": multi,
           "multi_digest": write_oci_layout(multi, [("linux", "amd64"), ("linux", "arm64")])}


def _copy(*args: str) -> None:
    result = skopeo("--insecure-policy", "copy", *TLS_OFF, *args)
    assert result.returncode == 0, result.stderr


def _blobs(layout: str) -> set[str]:
    return set(os.listdir(Path(layout, "blobs", "sha256")))


def test_copy_oci_layout_both_ways(moor_registry: Server, layouts: dict[str, str],
                                   tmp_path: Path) -> None:
    ref = f"docker://{moor_registry.host}/skopeo/single:v1"
    _copy(f"oci:{layouts['single']}:latest", ref)
    inspect = skopeo("inspect", "--tls-verify=false", ref)
    assert inspect.returncode == 0, inspect.stderr
    info = json.loads(inspect.stdout)
    assert info["Digest"] == layouts["single_digest"]
    assert info["Architecture"] == "amd64"
    assert len(info["Layers"]) == 1
    out = str(tmp_path / "back")
    _copy(ref, f"oci:{out}:latest")
    assert _blobs(out) == _blobs(layouts["single"])
    _copy(ref, f"dir:{tmp_path / 'dir'}")
    assert (tmp_path / "dir" / "manifest.json").exists()


def test_copy_all_of_a_two_platform_index(moor_registry: Server, layouts: dict[str, str],
                                          tmp_path: Path) -> None:
    ref = f"docker://{moor_registry.host}/skopeo/multi:v1"
    _copy("--all", f"oci:{layouts['multi']}:latest", ref)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref)
    index = json.loads(raw.stdout)
    assert index["mediaType"] == OCI_INDEX
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    arm = skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", ref)
    assert json.loads(arm.stdout)["Architecture"] == "arm64"
    out = str(tmp_path / "multi-back")
    _copy("--all", ref, f"oci:{out}:latest")
    assert _blobs(out) == _blobs(layouts["multi"])
    # The same blobs pushed to a second repository are deduplicated on disk.
    _copy("--all", ref, f"docker://{moor_registry.host}/skopeo/multi-copy:v1")
    tags = moor_registry.request("GET", "/v2/skopeo/multi-copy/tags/list").json()
    assert tags["tags"] == ["v1"]
