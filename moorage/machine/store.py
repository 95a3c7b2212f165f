"""A machine's record: <storage>/machines/NAME/config.json, in docker-machine's shape."""

from __future__ import annotations

import json
import os

from moorage.machine.errors import MachineError
from moorage.machine.paths import certs_dir, machine_dir, machines_dir, write_private

_HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def check_name(name: str) -> None:
    """docker-machine's rule: a hostname, ^[a-zA-Z0-9][a-zA-Z0-9\\-\\.]*$."""
    if not name or not name[0].isalnum() or not name.isascii() \
            or not _HOSTNAME_CHARS.issuperset(name):
        raise MachineError("Invalid hostname specified. Allowed hostname chars are: "
                           "0-9a-zA-Z . -")


def not_found(name: str) -> MachineError:
    return MachineError(f'Docker machine "{name}" does not exist. Use "moor machine ls" to '
                        'list machines. Use "moor machine create" to add a new one.')


class Machine:
    def __init__(self, name: str, config: dict[str, object]) -> None:
        self.name = name
        self.config = config
        self.dir = machine_dir(name)

    @property
    def driver(self) -> dict[str, object]:
        return self.config["Driver"]  # type: ignore[return-value]

    @property
    def driver_name(self) -> str:
        return str(self.config["DriverName"])

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    @property
    def engine_port(self) -> int:
        return int(self.driver["EnginePort"])  # type: ignore[call-overload]

    @property
    def ssh_port(self) -> int:
        return int(self.driver["SSHPort"])  # type: ignore[call-overload]

    @property
    def ip(self) -> str:
        return str(self.driver["IPAddress"])

    @property
    def url(self) -> str:
        return f"tcp://{self.ip}:{self.engine_port}"

    def save(self) -> None:
        write_private(self.path("config.json"),
                      json.dumps(self.config, indent=4, sort_keys=True).encode())


def new(name: str, driver_name: str, driver: dict[str, object]) -> Machine:
    base = machine_dir(name)
    auth = {"CertDir": certs_dir(), "CaCertPath": os.path.join(certs_dir(), "ca.pem"),
            "CaPrivateKeyPath": os.path.join(certs_dir(), "ca-key.pem"),
            "ClientCertPath": os.path.join(certs_dir(), "cert.pem"),
            "ClientKeyPath": os.path.join(certs_dir(), "key.pem"),
            "ServerCertPath": os.path.join(base, "server.pem"),
            "ServerKeyPath": os.path.join(base, "server-key.pem"),
            "StorePath": base, "ServerCertSANs": []}
    config: dict[str, object] = {
        "ConfigVersion": 3, "Name": name, "DriverName": driver_name,
        "Driver": {"MachineName": name, "StorePath": base, "SSHUser": "root",
                   "SSHKeyPath": os.path.join(base, "id_ed25519"), **driver},
        "HostOptions": {"EngineOptions": {"TlsVerify": True}, "AuthOptions": auth}}
    return Machine(name, config)


def load(name: str) -> Machine:
    try:
        with open(os.path.join(machine_dir(name), "config.json")) as f:
            return Machine(name, json.load(f))
    except FileNotFoundError:
        raise not_found(name) from None
    except (OSError, ValueError) as err:
        raise MachineError(f"loading {name}'s config.json: {err}") from None


def names() -> list[str]:
    try:
        entries = sorted(os.listdir(machines_dir()))
    except FileNotFoundError:
        return []
    return [n for n in entries if os.path.exists(os.path.join(machines_dir(), n, "config.json"))]
