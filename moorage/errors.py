"""The closed error taxonomy shared by every layer.

Each class maps to one HTTP status in the API layer and to exit status 1 in
``moor-runtime``. Messages are written for the user: one line naming the
object and the problem.
"""


class MoorError(Exception):
    """Base of every error moorage raises on purpose."""


class NotFound(MoorError):
    """The named object does not exist (HTTP 404)."""


class InvalidParameter(MoorError):
    """The request or configuration is malformed or invalid (HTTP 400)."""


class Conflict(MoorError):
    """The object exists or is in a state that forbids the operation (HTTP 409)."""


class NotModified(MoorError):
    """The operation had nothing to do (HTTP 304)."""


class Unauthorized(MoorError):
    """Credentials are missing or wrong (HTTP 401)."""


class Forbidden(MoorError):
    """The operation is not allowed (HTTP 403)."""


class Unavailable(MoorError):
    """A dependency is not available right now (HTTP 503)."""


class NotImplementedYet(MoorError):
    """A whole feature moorage does not have, such as registry search (HTTP 501,
    dockerd's errdefs.NotImplemented)."""


class SystemFailure(MoorError):
    """The system failed to do what was asked (HTTP 500)."""


def write_failed(err: OSError, target: str) -> SystemFailure:
    """A write that failed (a full disk, an I/O error) in Go's words: "write <target>:
    <reason>", as dockerd reports it."""
    return SystemFailure(f"write {target}: {(err.strerror or str(err)).lower()}")
