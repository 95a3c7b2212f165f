"""What every command gets: the global options, a lazily connected client, errors."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.cli.flags import Options
    from moorage.client.api import Client


class CommandError(Exception):
    """A failure the command reports itself: one line on stderr and an exit code.

    `with_help` gives docker's `run`-style report ("moor: …" and "Run 'moor run
    --help' for more information"), used where docker uses cli.StatusError.
    """

    def __init__(self, message: str, code: int = 1, with_help: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.with_help = with_help


class Session:
    def __init__(self, options: Options, prog: str) -> None:
        self.options = options
        self.prog = prog
        self.command = ""
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from moorage.client.api import Client
            from moorage.client.target import resolve
            from moorage.client.tls_options import tls_from_flags

            o = self.options
            tls = tls_from_flags(o.tls, o.tlsverify, o.tlscacert, o.tlscert, o.tlskey)
            self._client = Client(resolve(o.host[-1] if o.host else None, o.context, tls))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @staticmethod
    def warn(message: str) -> None:
        sys.stderr.write(message + "\n")
