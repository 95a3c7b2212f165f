"""Pull-through cache: ours in front of an upstream, then with the upstream stopped."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from registrykit import (
    skopeo,
    start_distribution,
    start_moor,
    stop_server,
    write_htpasswd,
    write_oci_layout,
)

NO_TLS = ("--src-tls-verify=false", "--dest-tls-verify=false")


def _copy(src: str, dest: str, *extra: str) -> None:
    result = skopeo("--insecure-policy", "copy", *NO_TLS, *extra, src, dest)
    assert result.returncode == 0, result.stderr


def test_pull_through_distribution_then_offline(tmp_path: Path) -> None:
    layout = str(tmp_path / "img")
    digest = write_oci_layout(layout, [("linux", "amd64"), ("linux", "arm64")])
    with tempfile.TemporaryDirectory(prefix="pt-") as base, \
            start_distribution(os.path.join(base, "upstream")) as upstream:
        _copy(f"oci:{layout}:latest", f"docker://{upstream.host}/library/app:1", "--all")
        with start_moor(os.path.join(base, "mirror"), "--proxy-remote",
                        upstream.url) as mirror:
            ref = f"docker://{mirror.host}/library/app:1"
            _copy(ref, f"oci:{tmp_path / 'first'}:latest", "--all")
            # A push to a cache is refused: it mirrors, it does not accept content.
            pushed = skopeo("--insecure-policy", "copy", *NO_TLS, f"oci:{layout}:latest",
                            f"docker://{mirror.host}/library/app:2")
            assert pushed.returncode != 0
            stop_server(upstream)
            _copy(ref, f"oci:{tmp_path / 'offline'}:latest", "--all")
            raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
            assert len(raw["manifests"]) == 2
            by_digest = f"docker://{mirror.host}/library/app@{digest}"
            assert skopeo("inspect", "--tls-verify=false", by_digest).returncode == 0
            assert sorted(os.listdir(tmp_path / "offline" / "blobs" / "sha256")) == \
                sorted(os.listdir(Path(layout) / "blobs" / "sha256"))
            stats = mirror.request("GET", "/metrics").body.decode()
            assert "moor_registry_blobs_stored_total 4" in stats  # 2 configs, 2 layers


def test_pull_through_bearer_upstream_with_credentials(tmp_path: Path) -> None:
    """Upstream answers with a Bearer challenge (ours with htpasswd): the cache gets a token."""
    layout = str(tmp_path / "img")
    write_oci_layout(layout, [("linux", "amd64")])
    with tempfile.TemporaryDirectory(prefix="pt-") as base:
        htpasswd = write_htpasswd(os.path.join(base, "htpasswd"), {"bob": "pw"})
        with start_moor(os.path.join(base, "upstream"), "--htpasswd", htpasswd) as upstream:
            _copy(f"oci:{layout}:latest", f"docker://{upstream.host}/team/app:1",
                  "--dest-creds", "bob:pw")
            with start_moor(os.path.join(base, "mirror"), "--proxy-remote", upstream.url,
                            "--proxy-username", "bob", "--proxy-password", "pw") as mirror:
                _copy(f"docker://{mirror.host}/team/app:1", f"oci:{tmp_path / 'out'}:latest")
                assert mirror.request("GET", "/v2/team/app/tags/list").json()["tags"] == ["1"]
