"""QEMU's monitor protocol: one command on the machine's unix socket."""

from __future__ import annotations

import json
import socket


def command(path: str, name: str, timeout: float = 5) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        reader = sock.makefile("rb")
        json.loads(reader.readline())  # the greeting
        for request in ({"execute": "qmp_capabilities"}, {"execute": name}):
            sock.sendall(json.dumps(request).encode() + b"\n")
            while True:
                reply = json.loads(reader.readline())
                if "return" in reply or "error" in reply:
                    break  # events may come first
            if "error" in reply:
                raise OSError(reply["error"].get("desc", "QMP error"))
        return reply
