"""Docker's JSON progress messages (moby pkg/jsonmessage), one JSON object per line.

Pull, push and load stream them; the docker CLI draws its progress bars from
``progressDetail`` and prints ``errorDetail`` as the command's error. Sans-IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JSONMessage:
    status: str = ""
    id: str = ""
    current: int | None = None  # progressDetail, for "Downloading", "Extracting", "Pushing"
    total: int | None = None
    error: str = ""
    stream: str = ""  # text the CLI prints as it is ("Loaded image: …\n")

    def to_json(self) -> dict[str, Any]:
        if self.error:
            return {"errorDetail": {"message": self.error}, "error": self.error}
        if self.stream:
            return {"stream": self.stream}
        out: dict[str, Any] = {"status": self.status}
        detail: dict[str, int] = {}
        if self.current is not None:
            detail["current"] = self.current
        if self.total is not None:
            detail["total"] = self.total
        # dockerd sends progressDetail on per-layer lines, even when empty.
        if self.id:
            out["progressDetail"] = detail
            out["id"] = self.id
        return out


Emit = Callable[[JSONMessage], None]  # where an operation sends its messages


def encode(message: JSONMessage) -> bytes:
    return json.dumps(message.to_json()).encode() + b"\r\n"
