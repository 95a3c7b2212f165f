"""Docker's short IDs (moby pkg/stringid): what the CLI and the progress lines show of
an image ID, a container ID or a digest."""

from __future__ import annotations


def short_id(full: str) -> str:
    """The first 12 hex digits, without the algorithm ("sha256:")."""
    return full.rpartition(":")[2][:12]
