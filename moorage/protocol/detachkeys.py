"""Docker's detach keys: the key sequence that ends an attach and leaves the container running.

`parse` reads Docker's syntax ("ctrl-p,ctrl-q": comma-separated, each one
character or ctrl-@, ctrl-a … ctrl-z, ctrl-[, ctrl-\\, ctrl-], ctrl-^,
ctrl-_), as moby's term.ToBytes. `DetachScanner` finds the sequence in stdin
as it flows, in any chunking, without I/O of its own: bytes that might start
the sequence are held back until the next bytes tell, and forwarded when they
turn out not to be it (as moby's escapeProxy does).
"""

from __future__ import annotations

DEFAULT = "ctrl-p,ctrl-q"
# ASCII 0-31 by name, as moby's term.ASCII.
_CONTROL = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
            "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


class InvalidDetachKeys(ValueError):
    """Not Docker's detach-key syntax; the message is Docker's."""


def parse(keys: str) -> bytes:
    """The bytes of `keys` ("" for Docker's default)."""
    codes = bytearray()
    for key in (keys or DEFAULT).split(","):
        if len(key) == 1:
            codes += key.encode()
        elif key in _CONTROL:
            codes.append(_CONTROL.index(key))
        else:
            raise InvalidDetachKeys(f"Unknown character: '{key}'")
    return bytes(codes)


class DetachScanner:
    """Feed stdin; get back what to forward, and whether the keys were typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0      # how much of `keys` ends the input so far (held back)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward now, detached). After a detach the rest is not forwarded."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            held = self.keys[:self.matched] + bytes((byte,))
            # The longest end of what is held that may still begin the sequence; the
            # bytes before it were typed, not the keys, and go on.
            keep = next(k for k in range(len(held), -1, -1)
                        if held[len(held) - k:] == self.keys[:k])
            out += held[:len(held) - keep]
            self.matched = keep
            if keep == len(self.keys):
                self.matched = 0
                return bytes(out), True
        return bytes(out), False
