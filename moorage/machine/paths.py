"""Where machines live: ~/.moor/machine (MOOR_MACHINE_STORAGE_PATH overrides it).

    <storage>/certs/            the client store's CA and client certificate (ca.pem,
                                ca-key.pem, cert.pem, key.pem), as docker-machine lays them
    <storage>/machines/NAME/    config.json, the machine's TLS files, SSH keys, known_hosts,
                                disk.qcow2 (an overlay on the cached image), seed.img
    <cache>/images/KEY/         the machine image built on this host (MOOR_MACHINE_CACHE,
                                default <storage>/cache)
"""

from __future__ import annotations

import os


def storage() -> str:
    return os.environ.get("MOOR_MACHINE_STORAGE_PATH") or os.path.join(
        os.path.expanduser("~"), ".moor", "machine")


def certs_dir() -> str:
    return os.path.join(storage(), "certs")


def machines_dir() -> str:
    return os.path.join(storage(), "machines")


def machine_dir(name: str) -> str:
    return os.path.join(machines_dir(), name)


def cache_dir() -> str:
    return os.environ.get("MOOR_MACHINE_CACHE") or os.path.join(storage(), "cache")


def private_dir(path: str) -> str:
    os.makedirs(path, 0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)
