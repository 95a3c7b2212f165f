"""The store survives the process: a kill -9 mid-upload, a restart, and everything is there."""

from __future__ import annotations

import os
import signal
import tempfile

from registrykit import image_manifest, put_manifest, restart_server, sha256, start_moor


def test_kill_mid_upload_then_resume_after_restart() -> None:
    with tempfile.TemporaryDirectory(prefix="moor-registry-restart-") as base, \
            start_moor(base) as server:
        assert server.process is not None
        try:
            manifest = image_manifest(server, "restart/app", layers=2)
            digest = put_manifest(server, "restart/app", "v1", manifest).headers[
                "Docker-Content-Digest"]
            data = os.urandom(300_000)
            location = server.request("POST", "/v2/restart/app/blobs/uploads/").headers[
                "Location"]
            assert server.request("PATCH", location, data[:100_000],
                                  {"Content-Range": "0-99999"}).status == 202
        finally:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
        restart_server(server)
        assert server.request("GET", f"/v2/restart/app/manifests/{digest}").body == manifest
        # The hash state died with the process: the upload resumes and the
        # registry hashes the file at the end instead.
        status = server.request("GET", location)
        assert status.headers["Range"] == "0-99999"
        assert server.request("PATCH", location, data[100_000:],
                              {"Content-Range": "100000-299999"}).status == 202
        done = server.request("PUT", f"{location}?digest={sha256(data)}")
        assert done.status == 201
        assert server.request("GET", f"/v2/restart/app/blobs/{sha256(data)}").body == data
        assert not os.listdir(os.path.join(server.storage, "tmp"))
