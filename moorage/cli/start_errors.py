"""How `run` and `start` report a container the engine could not start."""

from __future__ import annotations

from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.client.errors import APIError


def start_error(err: APIError) -> CommandError:
    """docker run's exit codes for a process that cannot be started: 127 not found,
    126 not executable, 125 anything else the engine refused."""
    text = err.message
    code = 125
    if "executable file not found" in text or "no such file or directory" in text:
        code = 127
    elif "permission denied" in text:
        code = 126
    return CommandError(f"Error response from daemon: {text}", code, with_help=True)
