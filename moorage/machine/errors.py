"""A machine operation's failure, naming the step it failed at."""

from __future__ import annotations


class MachineError(Exception):
    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(f"{step}: {message}" if step else message)
        self.step = step


def run(argv: list[str], step: str, *, timeout: float | None = None,
        input: bytes | None = None) -> str:
    """Runs a host tool; its failure becomes a MachineError naming the step and the
    tool's last lines of output."""
    import subprocess

    try:
        done = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise MachineError(f"{argv[0]} is not installed", step) from None
    except subprocess.TimeoutExpired:
        raise MachineError(f"{argv[0]} did not finish within {timeout:.0f}s", step) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-5:]
        raise MachineError(f"{argv[0]} failed (exit {done.returncode}): " + " / ".join(tail),
                           step)
    return done.stdout.decode(errors="replace")
