"""Line messages between the runtime and the processes it forks.

Two pipes, one each way. Every pipe end is close-on-exec, so the parent sees
end-of-file on its read side once the child has exec'd the user process or
died: no message is ever lost waiting on a process that is gone.
"""

from __future__ import annotations

import os


class ChildFailed(Exception):
    """The child reported an error (its message is the error's text) or died."""


class Channel:
    __slots__ = ("_buffer", "_read_fd", "_write_fd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._buffer = b""

    def send(self, message: str) -> None:
        os.write(self._write_fd, message.encode() + b"\n")

    def recv(self) -> str | None:
        """The next line, or None at end of file."""
        while b"\n" not in self._buffer:
            chunk = os.read(self._read_fd, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def expect(self, word: str) -> str:
        """Wait for a message starting with `word`; return what follows it."""
        message = self.recv()
        if message is None:
            raise ChildFailed("container init exited before it was ready")
        kind, _, rest = message.partition(" ")
        if kind == "error":
            raise ChildFailed(rest)
        if kind != word:
            raise ChildFailed(f"unexpected message from container init: {message!r}")
        return rest

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def pair() -> tuple[Channel, Channel]:
    """(parent side, child side)."""
    parent_read, child_write = os.pipe()
    child_read, parent_write = os.pipe()
    return Channel(parent_read, parent_write), Channel(child_read, child_write)
