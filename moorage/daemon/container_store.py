"""Container records in the data-root's SQLite database (table `containers`).

One row per container: its id, its unique name and the inspect document as
JSON, through the metadata layer that owns moor.db (store/metadata.py). Each
write is one transaction (WAL), so a crash leaves either the old or the new
record.
"""

from __future__ import annotations

import json

from moorage.api.containers.models import Container
from moorage.api.wire import decode, encode
from moorage.store.metadata import Metadata

# Version 0: the Engine API inspect document.
_DOC_VERSION = 0


class ContainerStore:
    def __init__(self, metadata: Metadata) -> None:
        self._table = metadata.records("containers")

    def load_all(self) -> list[Container]:
        return [decode(Container, json.loads(doc)) for _, _, _, doc in self._table.load_all()]

    def save(self, container: Container) -> None:
        """Insert or replace; sqlite3.IntegrityError when another container has the name."""
        self._table.put(container.id, container.name, _DOC_VERSION,
                        json.dumps(encode(container)))

    def delete(self, container_id: str) -> None:
        self._table.delete(container_id)

    def close(self) -> None:
        """The metadata layer owns the connections; nothing to close here."""
