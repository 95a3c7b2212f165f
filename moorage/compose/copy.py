"""`cp` between a service's container and the host, through the archive API, with
docker cp's rules for where the copy lands."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from typing import TYPE_CHECKING

from moorage.client.errors import APIError
from moorage.compose.errors import ComposeError

if TYPE_CHECKING:
    from moorage.client.api import Client


def from_container(client: Client, cid: str, src: str, dest: str) -> None:
    try:
        response = client.request("GET", f"/containers/{cid}/archive", {"path": src})
    except APIError as err:
        raise ComposeError(f"Error response from daemon: {err.message}") from None
    data = response.read()
    stat = json.loads(base64.b64decode(response.headers.get("x-docker-container-path-stat",
                                                            "e30=")) or b"{}")
    name = stat.get("name") or os.path.basename(src.rstrip("/"))
    if os.path.isdir(dest):
        target_dir, rename = dest, None
    else:
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise ComposeError(f"no such directory: {parent}")
        target_dir, rename = parent, os.path.basename(dest)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if rename is not None:
                first, _, rest = member.name.partition("/")
                member.name = rename + ("/" + rest if rest else "") if first == name \
                    else member.name
        tar.extractall(target_dir, filter="tar")


def to_container(client: Client, cid: str, src: str, dest: str, archive: bool) -> None:
    if not os.path.exists(src):
        raise ComposeError(f"stat {src}: no such file or directory")
    try:
        stat = client.head(f"/containers/{cid}/archive", {"path": dest})
        exists = "x-docker-container-path-stat" in stat
        is_dir = exists and json.loads(base64.b64decode(
            stat["x-docker-container-path-stat"]))["mode"] & (1 << 31) != 0
    except APIError as err:
        if err.status != 404:
            raise ComposeError(f"Error response from daemon: {err.message}") from None
        is_dir = False
    if is_dir:
        where, arcname = dest, os.path.basename(os.path.abspath(src))
    else:
        where, arcname = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(
            dest.rstrip("/"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
            if not archive:  # docker cp: files land owned by root unless -a
                info.uid = info.gid = 0
                info.uname = info.gname = ""
            return info
        tar.add(src, arcname, filter=owner)
    try:
        client.call("PUT", f"/containers/{cid}/archive", {"path": where},
                    data=buffer.getvalue(), headers={"Content-Type": "application/x-tar"})
    except APIError as err:
        raise ComposeError(f"Error response from daemon: {err.message}") from None
