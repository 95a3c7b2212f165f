"""Placeholder until the image store lands: an engine with no images."""

from __future__ import annotations


class ImageService:
    def __init__(self, data_root: str) -> None:
        self.data_root = data_root

    def count(self) -> int:
        return 0
