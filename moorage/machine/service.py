"""moord as a systemd service: the one unit both drivers install, the qemu image's
(enabled at build time) and the generic driver's on an existing host."""

from __future__ import annotations

import shlex

CERTS = "/etc/moor/certs"
DATA_ROOT = "/var/lib/moor"
MOORD_PID = "/run/moor/moord.pid"
NAME = "moord.service"


def moord_command(executable: str, port: int) -> str:
    # --data-root and --exec-root spelled out: moord's config.build reads their defaults
    # off a slotted dataclass (a member descriptor, not the path) when neither is given.
    return shlex.join([executable, "--data-root", DATA_ROOT, "--exec-root", "/run/moor",
                       "-H", "unix:///run/moor/moor.sock", "-H", f"tcp://0.0.0.0:{port}",
                       "--tlsverify", "--tlscacert", f"{CERTS}/ca.pem",
                       "--tlscert", f"{CERTS}/server.pem", "--tlskey", f"{CERTS}/server-key.pem"])


def unit(executable: str, port: int, unit_lines: str = "") -> str:
    """KillMode=process as docker.service: stopping the engine leaves the containers'
    shims to moord's own shutdown, not to systemd's cgroup sweep. Its output goes to a
    file of its own (`moor machine ssh NAME cat /var/log/moord.log`), journald or not."""
    return ("[Unit]\nDescription=moorage engine (moor machine)\nAfter=network.target\n"
            f"{unit_lines}\n[Service]\nExecStart={moord_command(executable, port)}\n"
            "Restart=always\nRestartSec=500ms\nKillMode=process\nTimeoutStopSec=20\n"
            "StandardOutput=append:/var/log/moord.log\nStandardError=inherit\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


def restart_command(systemd: bool) -> str:
    """After `upgrade` or `regenerate-certs` replaced moord's files. Without systemd
    (a generic host's restart loop) killing moord is the restart."""
    return f"systemctl restart {NAME}" if systemd else f"kill $(cat {MOORD_PID})"
