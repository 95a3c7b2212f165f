"""TLS settings for a tcp:// endpoint, from flags, the environment or a context.

Apart from the ssl machinery (moorage.client.tls), which only TLS connections import.
"""

from __future__ import annotations

import os


# A plain slotted class, not a dataclass: importing dataclasses costs ~12 ms of
# start-up (it pulls in inspect), a third of `moor version`'s budget.
class TLSOptions:
    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 verify: bool = True) -> None:
        self.ca, self.cert, self.key, self.verify = ca, cert, key, verify


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


def tls_from_flags(tls: bool, verify: bool, ca: str | None, cert: str | None,
                   key: str | None) -> TLSOptions | None:
    """TLS settings from --tls* flags and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, as docker does."""
    verify = verify or _env_flag("DOCKER_TLS_VERIFY")
    if not (tls or verify or ca or cert or key):
        return None
    cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.join(
        os.path.expanduser("~"), ".docker")

    def pick(given: str | None, name: str) -> str | None:
        if given:
            return given
        default = os.path.join(cert_path, name)
        return default if os.path.exists(default) else None

    # docker drops a default cert.pem/key.pem that does not exist, but keeps ca.pem:
    # verifying against a CA file that is missing is an error, not the system's CAs.
    ca = ca or (os.path.join(cert_path, "ca.pem") if verify else pick(None, "ca.pem"))
    return TLSOptions(ca=ca, cert=pick(cert, "cert.pem"), key=pick(key, "key.pem"),
                      verify=verify)
