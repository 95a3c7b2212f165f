"""moor build --output: the built image's filesystem, flattened from its layers (OCI
whiteouts applied), written as a directory (type=local,dest=DIR) or a tar
(type=tar,dest=FILE|-), as BuildKit's exporters do. The image comes from the
daemon's GET /images/{id}/get; the layers are held in memory while they are merged."""

from __future__ import annotations

import io
import json
import posixpath
import sys
import tarfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.cli.session import Session

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def parse_spec(spec: str) -> tuple[str, str]:
    """``type=local,dest=out`` → ("local", "out"); a bare path means type=local."""
    fields = dict(item.partition("=")[::2] for item in spec.split(",") if item)
    if "=" not in spec:
        return "local", spec
    kind, dest = fields.get("type", "local"), fields.get("dest", "")
    if kind not in ("local", "tar"):
        raise ValueError(f"output type {kind!r} is not supported: use local or tar")
    if not dest:
        raise ValueError(f"output type {kind} requires dest")
    return kind, dest


def _merged(archive: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            blob = outer.extractfile(layer)
            if blob is None:
                continue
            with tarfile.open(fileobj=blob, mode="r|*") as tar:
                for member in tar:
                    name = posixpath.normpath(member.name.lstrip("/"))
                    if name.startswith(".."):
                        continue
                    base, leaf = posixpath.split(name)
                    if leaf == _OPAQUE:
                        prefix = base + "/" if base else ""
                        for key in [k for k in entries if k.startswith(prefix)]:
                            del entries[key]
                        continue
                    if leaf.startswith(_WHITEOUT):
                        gone = posixpath.join(base, leaf[len(_WHITEOUT):])
                        for key in [k for k in entries
                                    if k == gone or k.startswith(gone + "/")]:
                            del entries[key]
                        continue
                    member.name = name
                    data = tar.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
                    entries[name] = (member, data)
    return entries


def export(session: Session, image_id: str, kind: str, dest: str) -> None:
    archive = b"".join(session.client.stream_raw("GET", f"/images/{image_id}/get"))
    entries = _merged(archive)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            member, data = entries[name]
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    if kind == "tar":
        if dest == "-":
            sys.stdout.buffer.write(out.getvalue())
            sys.stdout.buffer.flush()
        else:
            with open(dest, "wb") as f:
                f.write(out.getvalue())
        return
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        # Entries that would land outside dest (through links, say) are refused.
        tar.extractall(dest, filter="tar")
