"""htpasswd basic auth, the built-in bearer-token service with per-repository scopes, and TLS."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrykit import (
    Server,
    make_tls,
    skopeo,
    start_moor,
    write_htpasswd,
    write_oci_layout,
)

USER, PASSWORD = "alice", "s3cret"


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[Server, str]]:
    """Our registry with htpasswd auth and TLS from a test CA; yields (server, CA dir)."""
    with tempfile.TemporaryDirectory(prefix="moor-registry-tls-") as base:
        certs = os.path.join(base, "certs")
        os.makedirs(certs)
        pki = make_tls(certs)
        htpasswd = write_htpasswd(os.path.join(base, "htpasswd"), {USER: PASSWORD})
        # containers/image reads a CA from a directory of *.crt files.
        ca_dir = os.path.join(base, "ca-dir")
        os.makedirs(ca_dir)
        Path(ca_dir, "ca.crt").write_text(Path(pki.ca).read_text())
        with start_moor(base, "--htpasswd", htpasswd, "--tls-cert", pki.cert,
                        "--tls-key", pki.key, tls_ca=pki.ca) as server:
            yield server, ca_dir


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _token(server: Server, scope: str, user: str = USER, password: str = PASSWORD) -> str:
    r = server.request("GET", f"/moor/token?service={server.host}&scope={scope}",
                       headers=_basic(user, password))
    assert r.status == 200, r.body
    return str(r.json()["token"])


def test_challenge_and_token_flow(secured: tuple[Server, str]) -> None:
    server, _ = secured
    r = server.request("GET", "/v2/")
    assert (r.status, r.error_codes()) == (401, ["UNAUTHORIZED"])
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="https://{server.host}/moor/token"')
    assert f'service="{server.host}"' in challenge
    r = server.request("GET", "/v2/private/app/tags/list")
    assert 'scope="repository:private/app:pull"' in r.headers["WWW-Authenticate"]

    token = _token(server, "repository:private/app:pull,push")
    bearer = {"Authorization": f"Bearer {token}"}
    assert server.request("GET", "/v2/", headers=bearer).status == 200
    # Allowed in its repository (the repository just does not exist yet)...
    r = server.request("GET", "/v2/private/app/tags/list", headers=bearer)
    assert (r.status, r.error_codes()) == (404, ["NAME_UNKNOWN"])
    # ...and denied in any other.
    r = server.request("GET", "/v2/private/other/tags/list", headers=bearer)
    assert (r.status, r.error_codes()) == (403, ["DENIED"])
    r = server.request("GET", "/v2/_catalog", headers=bearer)
    assert r.status == 403
    catalog = _token(server, "registry:catalog:*")
    assert server.request("GET", "/v2/_catalog",
                          headers={"Authorization": f"Bearer {catalog}"}).status == 200


def test_bad_credentials(secured: tuple[Server, str]) -> None:
    server, _ = secured
    r = server.request("GET", "/moor/token?scope=repository:x:pull",
                       headers=_basic(USER, "wrong"))
    assert (r.status, r.error_codes()) == (401, ["UNAUTHORIZED"])
    # An anonymous token grants nothing: the registry then answers 401.
    anonymous = server.request("GET", "/moor/token?scope=repository:x:pull").json()["token"]
    r = server.request("GET", "/v2/x/tags/list", headers={"Authorization": f"Bearer {anonymous}"})
    assert r.status == 401
    r = server.request("GET", "/v2/x/tags/list", headers={"Authorization": "Bearer forged.sig"})
    assert r.status == 401
    # Basic credentials work directly too (curl -u).
    r = server.request("GET", "/v2/x/tags/list", headers=_basic(USER, PASSWORD))
    assert r.status == 404
    assert server.request("GET", "/v2/", headers=_basic("mallory", PASSWORD)).status == 401


def test_skopeo_with_creds_over_tls(secured: tuple[Server, str], tmp_path: Path) -> None:
    server, ca_dir = secured
    layout = str(tmp_path / "img")
    digest = write_oci_layout(layout, [("linux", "amd64")])
    ref = f"docker://{server.host}/secure/img:1"
    denied = skopeo("--insecure-policy", "copy", "--dest-cert-dir", ca_dir,
                    "--dest-creds", f"{USER}:nope", f"oci:{layout}:latest", ref)
    assert denied.returncode != 0
    assert "unauthorized" in denied.stderr.lower()
    copied = skopeo("--insecure-policy", "copy", "--dest-cert-dir", ca_dir,
                    "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{layout}:latest", ref)
    assert copied.returncode == 0, copied.stderr
    inspect = skopeo("inspect", "--cert-dir", ca_dir, "--creds", f"{USER}:{PASSWORD}", ref)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Digest"] == digest
    # Without the CA the certificate is not trusted.
    untrusted = skopeo("inspect", "--creds", f"{USER}:{PASSWORD}", ref)
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr


def test_admin_endpoints_need_credentials(secured: tuple[Server, str]) -> None:
    server, _ = secured
    assert server.request("POST", "/moor/registry/gc?dry_run=1").status == 401
    r = server.request("POST", "/moor/registry/gc?dry_run=1", headers=_basic(USER, PASSWORD))
    assert r.status == 200
    assert r.json()["blobs_deleted"] == 0
