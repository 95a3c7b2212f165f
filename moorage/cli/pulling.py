"""Pulling an image, and the credentials `login` stored that pull and push send."""

from __future__ import annotations

from moorage.cli.progress import Progress
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from moorage.cli.session import Session


def auth_header(reference: str) -> dict[str, str]:
    """X-Registry-Auth (base64url JSON) for the registry of `reference`, from the
    credentials `login` stored; empty without any."""
    registry = _registry(reference)
    from moorage.cli.cmd_login import stored

    user, password = stored(registry)
    if not user:
        return {}
    import base64

    from moorage import json_codec

    doc = json_codec.dumps({"username": user, "password": password, "serveraddress": registry})
    return {"X-Registry-Auth": base64.urlsafe_b64encode(doc.encode()).decode()}


def _registry(reference: str) -> str:
    first = reference.split("/", 1)[0]
    return first if "/" in reference and ("." in first or ":" in first
                                          or first == "localhost") else "https://index.docker.io/v1/"


def pull_image(session: Session, reference: str, quiet: bool, stream: TextIO) -> None:
    name, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] \
        else (reference, "", "latest")
    if "@" in reference:
        name, tag = reference, ""
    progress = Progress(stream)
    for message in session.client.stream_json(
            "POST", "/images/create", {"fromImage": name, "tag": tag or None},
            headers=auth_header(reference)):
        if not quiet:
            progress.show(message)
        elif message.get("error"):
            raise CommandError(message["error"])
