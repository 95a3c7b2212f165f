"""The one exception of compose: a message in Compose v2's words and its exit code."""

from __future__ import annotations


class ComposeError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
