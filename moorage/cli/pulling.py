"""Pulling an image, with the credentials `login` stored."""

from __future__ import annotations

from moorage.cli.progress import Progress
from moorage.cli.session import CommandError
from moorage.client.credentials import auth_header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from moorage.cli.session import Session


def name_only(reference: str) -> bool:
    """A reference without tag or digest (docker's reference.IsNameOnly)."""
    return "@" not in reference and ":" not in reference.rsplit("/", 1)[-1]


def fully_qualified(reference: str, all_tags: bool = False) -> str:
    """The reference as the docker CLI prints it after a pull: with the registry, the
    "library/" of official images and the default tag (docker's reference.TagNameOnly)."""
    first, _, rest = reference.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        reference = "docker.io/" + (reference if rest else "library/" + reference)
    if name_only(reference) and not all_tags:
        reference += ":latest"
    return reference


def pull_image(session: Session, reference: str, quiet: bool, stream: TextIO,
               all_tags: bool = False) -> None:
    """Pull `reference` (with `all_tags`, every tag of a name-only reference)."""
    name, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] \
        else (reference, "", "" if all_tags else "latest")
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
