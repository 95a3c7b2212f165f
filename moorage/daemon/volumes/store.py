"""Volumes as plain directories, laid out as dockerd's `local` driver lays them out.

<data-root>/volumes/<name>/_data is the volume; the directory is the whole record
(no metadata yet: the volumes issue adds options, labels and the /volumes API on
top of this store). The containers that mount a volume lease it in the
metadata layer (store/leases.py); a leased volume cannot be removed. Creation
and removal go through a temporary name and one rename, so a crash never leaves
a half-made or half-removed volume visible.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil

from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.store.leases import Leases
from moorage.store.metadata import Metadata

# moby volume/local: volumeNameRegex and validateName.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_TMP_PREFIX = ".tmp-"


class VolumeStore:
    def __init__(self, data_root: str, metadata: Metadata) -> None:
        self.root = os.path.join(data_root, "volumes")
        # 0701 as dockerd's: others may traverse to a volume's _data, not list the names.
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.leases = Leases(metadata, "volume")
        for leftover in os.listdir(self.root):
            if leftover.startswith(_TMP_PREFIX):
                shutil.rmtree(os.path.join(self.root, leftover), ignore_errors=True)

    def path(self, name: str) -> str:
        """The host directory a container mounts for volume `name` (it need not exist)."""
        return os.path.join(self.root, name, "_data")

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.path(name))

    def create(self, name: str = "") -> str:
        """The volume `name`, made if missing (idempotent); a new anonymous one (a random
        64-hex name, as dockerd's) when `name` is empty. Returns the name.
        InvalidParameter in dockerd's words for a name the local driver refuses."""
        if not name:
            name = secrets.token_hex(32)
        elif len(name) == 1:
            raise InvalidParameter(f"create {name}: volume name is too short, names should "
                                   "be at least two alphanumeric characters")
        elif not _NAME.match(name):
            raise InvalidParameter(
                f'create {name}: "{name}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                "a host directory, use absolute path")
        if self.exists(name):
            return name
        tmp = os.path.join(self.root, _TMP_PREFIX + secrets.token_hex(8))
        os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
        os.chmod(tmp, 0o701)
        try:
            os.rename(tmp, os.path.join(self.root, name))
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not self.exists(name):  # not a concurrent create of the same name
                raise
        return name

    def remove(self, name: str) -> None:
        """Delete the volume and its content. NotFound when there is none; Conflict while
        a container (running or not) holds a lease on it."""
        if not self.exists(name):
            raise NotFound(f"get {name}: no such volume")
        users = self.leases.holders(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        tmp = os.path.join(self.root, _TMP_PREFIX + secrets.token_hex(8))
        os.rename(os.path.join(self.root, name), tmp)
        shutil.rmtree(tmp, ignore_errors=True)
