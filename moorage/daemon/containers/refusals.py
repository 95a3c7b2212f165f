"""Refusals of what the engine would otherwise accept and silently not do.

Each check stays until its feature lands; the words follow dockerd's where
dockerd refuses the same thing (a network that does not exist), and say plainly
what is missing where dockerd would do it (publishing ports, AppArmor or SELinux
confinement on a host without them, rotating the json-file log).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from moorage.errors import InvalidParameter

# Options that ask for no confinement at all: on a host without AppArmor or
# SELinux that is exactly what a container gets, so they are honoured.
_UNCONFINED = ("apparmor=unconfined", "label=disable", "label:disable")


class _LogConfig(Protocol):
    @property
    def config(self) -> Mapping[str, str]: ...


class _HostConfig(Protocol):
    @property
    def security_opt(self) -> tuple[str, ...] | None: ...
    @property
    def log_config(self) -> _LogConfig: ...


def refuse_unsupported(host_config: _HostConfig, *, apparmor: bool | None = None,
                       selinux: bool | None = None) -> None:
    """Raise for a container setting the engine cannot honour yet.

    `apparmor` and `selinux` say whether the host enforces them (probed when None).
    Raises InvalidParameter; pure apart from the probes, so safe to call more than once.
    """
    for option in host_config.security_opt or ():
        if option in _UNCONFINED:
            continue
        if option.startswith("apparmor") and not (apparmor if apparmor is not None
                                                  else apparmor_enabled()):
            raise InvalidParameter(f'invalid --security-opt: "{option}": AppArmor is not '
                                   "enabled on this host")
        if option.startswith("label") and not (selinux if selinux is not None
                                               else selinux_enabled()):
            raise InvalidParameter(f'invalid --security-opt: "{option}": SELinux is not '
                                   "enabled on this host")



def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    # go-selinux's check: selinuxfs mounted (its "enforce" file present).
    return any(os.path.exists(f"{root}/enforce")
               for root in ("/sys/fs/selinux", "/selinux"))
