"""Contexts stored exactly as the docker CLI stores them, so both tools share them.

Layout (docker/cli cli/context/store): <config>/contexts/meta/<sha256(name)>/meta.json
holds {"Name", "Metadata", "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}};
TLS files live in <config>/contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem;
the current context is "currentContext" in <config>/config.json.
"""

from __future__ import annotations

import os

from moorage import json_codec
from moorage.client.endpoint import DEFAULT_HOST, Endpoint
from moorage.client.errors import EndpointError
from moorage.client.files import make_dirs, write_atomic
from moorage.client.tls_options import TLSOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# docker's rule, ^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$, checked without `re` (read on every start).
_NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$"
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.+-")


def _valid_name(name: str) -> bool:
    return len(name) > 1 and name[0] in _NAME_FIRST and _NAME_REST.issuperset(name[1:])


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _config_path() -> str:
    return os.path.join(config_dir(), "config.json")


def read_config() -> dict[str, Any]:
    try:
        with open(_config_path()) as f:
            data = json_codec.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise EndpointError(f"loading config file {_config_path()}: {err}") from None
    return data if isinstance(data, dict) else {}


def write_config(data: dict[str, Any]) -> None:
    """config.json at 0600 in a 0700 folder, as the docker CLI's ConfigFile.Save."""
    import json  # only when writing: indented output needs the json package

    make_dirs(config_dir(), 0o700)
    # docker writes config.json indented with a tab; keep it diff-friendly for both tools.
    write_atomic(_config_path(), json.dumps(data, indent="\t").encode(), 0o600)


def current() -> str:
    return os.environ.get("DOCKER_CONTEXT") or read_config().get("currentContext") or "default"


def _digest(name: str) -> str:
    import hashlib  # only for named contexts: keeps `moor ps` on the default one fast

    return hashlib.sha256(name.encode()).hexdigest()


def meta_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "meta", _digest(name))


def tls_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "tls", _digest(name))


def _not_found(name: str) -> EndpointError:
    return EndpointError(f'context "{name}" does not exist')


def default_document() -> dict[str, Any]:
    host = os.environ.get("MOOR_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    return {"Name": "default", "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
            "TLSMaterial": {}, "Storage": {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"}}


def document(name: str) -> dict[str, Any]:
    """What `context inspect` prints: the metadata plus TLS files and storage paths."""
    if name == "default":
        return default_document()
    try:
        with open(os.path.join(meta_dir(name), "meta.json")) as f:
            meta: dict[str, Any] = json_codec.loads(f.read())  # type: ignore[assignment]
    except FileNotFoundError:
        raise _not_found(name) from None
    tls_files = _tls_files(name)
    meta["TLSMaterial"] = {"docker": sorted(tls_files)} if tls_files else {}
    meta["Storage"] = {"MetadataPath": meta_dir(name), "TLSPath": tls_dir(name)}
    return meta


def _tls_files(name: str) -> dict[str, str]:
    base = os.path.join(tls_dir(name), "docker")
    names = ("ca.pem", "cert.pem", "key.pem")
    return {n: os.path.join(base, n) for n in names if os.path.exists(os.path.join(base, n))}


def load(name: str) -> Endpoint:
    docker = document(name)["Endpoints"].get("docker", {})
    files = _tls_files(name)
    tls = None
    if files or docker.get("SkipTLSVerify"):
        tls = TLSOptions(ca=files.get("ca.pem"), cert=files.get("cert.pem"),
                         key=files.get("key.pem"), verify=not docker.get("SkipTLSVerify"))
    return Endpoint(docker.get("Host") or DEFAULT_HOST, tls, context=name)


def names() -> list[str]:
    root = os.path.join(config_dir(), "contexts", "meta")
    found = ["default"]
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            with open(os.path.join(root, entry, "meta.json")) as f:
                found.append(json_codec.loads(f.read())["Name"])  # type: ignore[index]
        except (OSError, ValueError, KeyError):
            continue
    return sorted(found)


def _check_new(name: str) -> None:
    if not _valid_name(name) or name == "default":
        raise EndpointError(f'context name "{name}" is invalid, names are validated against '
                            f'regexp "{_NAME_PATTERN}"' if name != "default"
                            else '"default" is a reserved context name')
    if os.path.exists(meta_dir(name)):
        raise EndpointError(f'context "{name}" already exists')


def create(name: str, description: str, host: str, skip_tls_verify: bool,
           tls_material: dict[str, str]) -> None:
    """A new context; `tls_material` maps "ca.pem", "cert.pem", "key.pem" to files."""
    _check_new(name)
    metadata = {"Description": description} if description else {}
    _save(name, {"Name": name, "Metadata": metadata,
                 "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}}},
          _read_files(tls_material))


def _read_files(paths: dict[str, str]) -> dict[str, bytes]:
    found = {}
    for target, source in paths.items():
        with open(source, "rb") as f:
            found[target] = f.read()
    return found


def _save(name: str, meta: dict[str, Any], tls_material: dict[str, bytes] | None) -> None:
    """Write a context's meta.json and, unless None, replace its TLS files with these."""
    # The docker CLI's context store: metadata world-readable, TLS material private.
    make_dirs(meta_dir(name), 0o755)
    write_atomic(os.path.join(meta_dir(name), "meta.json"),
                 json_codec.dumps(meta, compact=True).encode(), 0o644)
    if tls_material is None:
        return
    import shutil

    shutil.rmtree(tls_dir(name), ignore_errors=True)
    if tls_material:
        base = os.path.join(tls_dir(name), "docker")
        make_dirs(base, 0o700)
        for target, data in tls_material.items():
            write_atomic(os.path.join(base, target), data, 0o600)


def endpoint_of(name: str) -> tuple[str, bool, dict[str, str]]:
    """(host, skip TLS verify, TLS files) of an existing context, "default" included."""
    docker = document(name)["Endpoints"]["docker"]
    return docker["Host"], bool(docker.get("SkipTLSVerify")), \
        _tls_files(name) if name != "default" else {}


def update(name: str, description: str | None, endpoint: tuple[str, bool, dict[str, str]]
           | None) -> None:
    """Change an existing context's description and, when given, its whole endpoint."""
    if name == "default":
        raise EndpointError('context "default" cannot be updated')
    meta = {key: value for key, value in document(name).items()
            if key not in ("TLSMaterial", "Storage")}
    if description is not None:
        meta["Metadata"] = {**meta.get("Metadata", {}), "Description": description}
    material = None
    if endpoint is not None:
        host, skip, files = endpoint
        meta["Endpoints"] = {**meta.get("Endpoints", {}),
                             "docker": {"Host": host, "SkipTLSVerify": skip}}
        material = _read_files(files)
    _save(name, meta, material)


def export_tar(name: str) -> bytes:
    """The docker CLI's export: meta.json and the tls/ tree of the context, as a tar."""
    import io
    import tarfile

    meta = {key: value for key, value in document(name).items()
            if key not in ("TLSMaterial", "Storage")}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        def add(path: str, data: bytes | None, mode: int) -> None:
            info = tarfile.TarInfo(path)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        add("meta.json", json_codec.dumps(meta, compact=True).encode(), 0o644)
        add("tls", None, 0o700)
        files = _tls_files(name) if name != "default" else {}
        if files:
            add("tls/docker", None, 0o700)
            for target, path in sorted(files.items()):
                with open(path, "rb") as f:
                    add(f"tls/docker/{target}", f.read(), 0o600)
    return out.getvalue()


def import_tar(name: str, data: bytes) -> None:
    """A context made from an export_tar (the docker CLI's), named `name`."""
    import io
    import tarfile

    _check_new(name)
    meta: dict[str, Any] | None = None
    material: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                if member.name == "meta.json" and member.isfile():
                    meta = json_codec.loads(archive.extractfile(member).read())  # type: ignore[union-attr,assignment]
                elif member.isfile() and member.name in (
                        "tls/docker/ca.pem", "tls/docker/cert.pem", "tls/docker/key.pem"):
                    material[member.name.rsplit("/", 1)[1]] = \
                        archive.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, ValueError) as err:
        raise EndpointError(f"invalid context archive: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("Endpoints"), dict):
        raise EndpointError("invalid context archive: no meta.json")
    _save(name, {**meta, "Name": name}, material)


def remove(name: str) -> None:
    if name == "default":
        raise EndpointError('default: context "default" cannot be removed')
    if not os.path.exists(meta_dir(name)):
        raise _not_found(name)
    import shutil

    shutil.rmtree(meta_dir(name))
    shutil.rmtree(tls_dir(name), ignore_errors=True)
    config = read_config()
    if config.get("currentContext") == name:
        del config["currentContext"]
        write_config(config)


def use(name: str) -> None:
    if name != "default":
        document(name)
    config = read_config()
    if name == "default":
        config.pop("currentContext", None)
    else:
        config["currentContext"] = name
    write_config(config)
