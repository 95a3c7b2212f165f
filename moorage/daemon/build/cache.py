"""The build cache: which image a step made, by what the step depends on (its parent
image, its command and config, the content it copies), kept in a file so it
survives restarts. An entry whose image is gone is a miss."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

from moorage.daemon.images.service import ImageService
from moorage.fsutil import atomic_write


class BuildCache:
    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "cache.json")
        self.lock = threading.Lock()
        self.entries: dict[str, str] = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                self.entries = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError):
            pass

    @staticmethod
    def key(parent: str | None, created_by: str, config: dict[str, Any], identity: Any) -> str:
        document = json.dumps([parent, created_by, config, identity], sort_keys=True,
                              default=str)
        return hashlib.sha256(document.encode()).hexdigest()

    def get(self, key: str, images: ImageService) -> str | None:
        with self.lock:
            image_id = self.entries.get(key)
        if image_id is None or images.metadata.image(image_id) is None:
            return None
        return image_id

    def put(self, key: str, image_id: str) -> None:
        with self.lock:
            self.entries[key] = image_id
            self._save()

    def prune(self) -> list[str]:
        """Forget every entry; returns the keys forgotten."""
        with self.lock:
            gone = sorted(self.entries)
            self.entries = {}
            self._save()
        return gone

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self.entries, sort_keys=True), 0o600)
