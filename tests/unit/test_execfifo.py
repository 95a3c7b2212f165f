"""The start's read of the exec fifo (runtime/execfifo.py) against the init's write."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from moorage.errors import MoorError
from moorage.runtime import execfifo


def _dies(fifo: str, writes: bool) -> Callable[[int], None]:
    """A liveness check that finds the init gone; with `writes`, it wrote its byte
    after the start's first read found none (the interleaving a container as short as
    `true` meets on a loaded machine)."""
    def check(_pid: int) -> None:
        if writes:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"0")
            os.close(fd)
        return None
    return check


@pytest.mark.parametrize("writes", [True, False])
def test_an_init_that_wrote_and_ended_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             writes: bool) -> None:
    fifo = str(tmp_path / "exec.fifo")
    os.mkfifo(fifo)
    monkeypatch.setattr(execfifo, "process_start_time", _dies(fifo, writes))
    if writes:
        execfifo.release(fifo, 1, "1")
        assert not os.path.exists(fifo)
    else:
        with pytest.raises(MoorError, match="already dead"):
            execfifo.release(fifo, 1, "1")
