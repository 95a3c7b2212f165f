"""The client's exceptions, in a module with no imports so the CLI can catch them cheaply."""

from __future__ import annotations


class APIError(Exception):
    """The daemon answered with an error status; `message` is its {"message": …}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectionFailed(Exception):
    """The daemon could not be reached at all."""

    def __init__(self, host: str, cause: BaseException) -> None:
        super().__init__(f"{host}: {cause}")
        self.host = host
        self.cause = cause


class EndpointError(Exception):
    """A host, context or TLS setting the client cannot use."""
