"""Pulling an image, with the credentials `login` stored."""

from __future__ import annotations

from moorage.cli.progress import Progress
from moorage.cli.session import CommandError
from moorage.client.credentials import auth_header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from moorage.cli.session import Session


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
