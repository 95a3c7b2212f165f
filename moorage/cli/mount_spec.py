"""`--mount` as the docker CLI parses it (opts/mount.go): CSV `key=value` fields into
an Engine API Mount, with its error words."""

from __future__ import annotations

from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BARE = ("readonly", "ro", "volume-nocopy", "bind-nonrecursive")
_RECURSIVE = {"enabled": None, "disabled": "NonRecursive", "writable": "ReadOnlyNonRecursive",
              "readonly": "ReadOnlyForceRecursive"}


def parse_mounts(specs: list[str]) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        try:
            out.append(_parse(spec))
        except ValueError as err:
            raise CommandError(f'invalid argument "{spec}" for "--mount" flag: {err}', 125,
                               with_help=True) from None
    return out


def _fields(spec: str) -> list[str]:
    if '"' not in spec:
        return spec.split(",")
    import csv  # only for quoted fields, as docker reads the value as CSV

    return next(csv.reader([spec]))


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def _parse(spec: str) -> dict[str, Any]:
    from moorage.cli.container_flags import ram_in_bytes

    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in _fields(spec):
        key, sep, value = field.partition("=")
        key = key.lower()
        if not sep:
            if key not in _BARE:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            value = "true"
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            bind["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, value)
        elif key == "bind-recursive":
            if value not in _RECURSIVE:
                raise ValueError(f"invalid value for {key}: {value}")
            if _RECURSIVE[value]:
                bind[_RECURSIVE[value]] = True
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            name, _, text = value.partition("=")
            volume.setdefault("Labels", {})[name] = text
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            name, _, text = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = text
        elif key == "tmpfs-size":
            try:
                tmpfs["SizeBytes"] = ram_in_bytes(value)
            except CommandError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for prefix, options, kind, name in (("volume", volume, "volume", "VolumeOptions"),
                                        ("bind", bind, "bind", "BindOptions"),
                                        ("tmpfs", tmpfs, "tmpfs", "TmpfsOptions")):
        if options:
            if mount["Type"] != kind:
                raise ValueError(f"cannot mix '{prefix}-*' options with mount type "
                                 f"'{mount['Type']}'")
            mount[name] = options
    return mount
