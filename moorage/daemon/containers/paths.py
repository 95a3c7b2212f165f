"""Where a container's files live: its directory under the data-root, its shim's socket
and exit record under the exec-root."""

from __future__ import annotations

import contextlib
import json
import os
import secrets

from moorage.model.records import ContainerRecord
from moorage.model.times import now_ns, parse_rfc3339_ns
from moorage.shim.wire import ExitRecord


class ContainerPaths:
    def __init__(self, data_root: str, exec_root: str) -> None:
        self.root = os.path.join(data_root, "containers")
        self.shims = os.path.join(exec_root, "shims")
        os.makedirs(self.root, mode=0o710, exist_ok=True)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def socket(self, record: ContainerRecord) -> str:
        """The socket of the container's shim (records before shim_socket: by id alone)."""
        return record.shim_socket or os.path.join(self.shims, record.id[:24] + ".sock")

    def new_socket(self, container_id: str) -> str:
        """A socket path for a new run: an exiting shim unlinks its own path, which must
        not be its successor's. sun_path holds 108 bytes: 16 hex of the id and 8 of the
        run (30 bytes with the suffix, as long as the 24-hex name before) keep deep
        exec-roots usable."""
        return os.path.join(self.shims, f"{container_id[:16]}-{secrets.token_hex(4)}.sock")

    def exit_file(self, container_id: str) -> str:
        return os.path.join(self.shims, container_id[:24] + ".exit")

    def remove_exit_file(self, container_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.exit_file(container_id))


def exit_status(record: ExitRecord) -> tuple[int, bool, str, int]:
    """A shim's exit record as (exit code, OOM killed, error, finished at in ns)."""
    try:
        finished = parse_rfc3339_ns(str(record.finished_at or ""))
    except ValueError:
        finished = 0
    return (int(record.exit_code), bool(record.oom_killed), str(record.error or ""),
            finished or now_ns())


def read_exit_file(paths: ContainerPaths, container_id: str) -> ExitRecord | None:
    """The exit record the shim left, None when it left none."""
    try:
        with open(paths.exit_file(container_id)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return ExitRecord.from_dict(record) if isinstance(record, dict) else None


# The exit of a container whose shim died without recording one.
SHIM_GONE = ExitRecord(255, error="the container's shim is gone")
