"""File primitives for cgroupfs: one-line errors naming the file and the value."""

from __future__ import annotations

import errno
import os
import time

from moorage.errors import InvalidParameter, MoorError, SystemFailure

# Not typing.TYPE_CHECKING: importing typing costs milliseconds on the container start
# path; type checkers treat any constant of this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def read(path: str) -> str:
    try:
        return _read(path)
    except OSError as e:
        raise SystemFailure(f"cgroup: cannot read {path}: {e.strerror}") from e


def read_if_exists(path: str) -> str | None:
    """None when the file is absent: its controller is off, or a sub-cgroup just went away."""
    try:
        return _read(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SystemFailure(f"cgroup: cannot read {path}: {e.strerror}") from e


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # cgroupfs files fit in one page except cgroup.procs of a big cgroup: read to EOF.
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def write(path: str, value: str) -> None:
    try:
        write_raw(path, value)
    except OSError as e:
        raise write_error(path, value, e) from e


def write_raw(path: str, value: str) -> None:
    """Like write() but lets OSError through, for callers that explain an errno better."""
    # No O_TRUNC/O_CREAT: cgroupfs files exist already and each write() is one command.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_commands(directory: str, commands: Iterable[tuple[str, str]]) -> None:
    """write() of each (file, value) under `directory` in order, each file opened once:
    a file such as devices.allow takes one command per write(), and ~20 of them made
    ~20 opens of it at every container start."""
    opened: dict[str, int] = {}
    try:
        for name, value in commands:
            path = f"{directory}/{name}"
            try:
                fd = opened.get(name)
                if fd is None:
                    fd = opened[name] = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, value.encode())
            except OSError as e:
                raise write_error(path, value, e) from e
    finally:
        for fd in opened.values():
            os.close(fd)


def write_error(path: str, value: str, e: OSError) -> MoorError:
    message = f'cgroup: cannot write "{value}" to {path}: {e.strerror}'
    # The kernel answers EINVAL or ERANGE to values it will not take.
    rejected = e.errno in (errno.EINVAL, errno.ERANGE)
    return InvalidParameter(message) if rejected else SystemFailure(message)


def make_path(leaf: str) -> str | None:
    """Create `leaf` and its missing parents; return the topmost directory created.

    None means `leaf` existed already: like runc, the cgroup is adopted, and it is
    not ours to remove later.
    """
    for _ in range(3):
        try:
            return _make(leaf)
        except FileNotFoundError:
            # A parent that existed a moment ago was just removed by the destroy of
            # the container that created it; descend again.
            continue
        except OSError as e:
            raise SystemFailure(f"cgroup: cannot create {e.filename or leaf}: {e.strerror}") from e
    raise SystemFailure(f"cgroup: cannot create {leaf}: its parent keeps disappearing")


def _make(path: str) -> str | None:
    try:
        os.mkdir(path, 0o755)
        return path
    except FileExistsError:
        return None
    except FileNotFoundError:
        pass
    top = _make(os.path.dirname(path))
    os.mkdir(path, 0o755)
    return top or path


def remove_path(leaf: str, top: str) -> None:
    """rmdir `leaf`, the sub-cgroups its processes made, then its parents up to `top`."""
    try:
        # Most often the leaf has no sub-cgroup and no process left: one rmdir, where a
        # walk first would open and read it (~0.5 ms over a v1 host's hierarchies).
        os.rmdir(leaf)
    except FileNotFoundError:
        pass
    except OSError:  # EBUSY: sub-cgroups, or processes still leaving
        for dirpath, _, _ in os.walk(leaf, topdown=False):
            _rmdir_when_empty(dirpath)
    parent = os.path.dirname(leaf)
    while len(parent) >= len(top):
        try:
            os.rmdir(parent)
        except FileNotFoundError:
            pass
        except OSError:
            # Another container's cgroup lives here now: removing the level is
            # left to whoever removes the last cgroup in it.
            return
        parent = os.path.dirname(parent)


def _rmdir_when_empty(path: str) -> None:
    # Killed processes leave the cgroup asynchronously, after they were signalled:
    # EBUSY for a few milliseconds is normal. Back off for about one second in all.
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or delay > 0.5:
                raise SystemFailure(f"cgroup: cannot remove {path}: {e.strerror}") from e
        time.sleep(delay)
        delay *= 2


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` with a growing interval; False when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return True
