"""JSON through CPython's C codec, without importing the json package.

`import json` compiles half a dozen regular expressions and pulls in `re` and
`enum`: ~10 ms measured here, as much as the interpreter's own start. The CLI
and the runtime are started for every command, so they encode and decode with
the C scanner and encoder that json itself uses, and fall back to the json
package where the C module is absent or for indented output.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # not CPython: the json package is the codec
    make_scanner = None

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes the C scanner reads from json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


def _unserialisable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if make_scanner is not None:
    _scan = make_scanner(_ScannerContext())
    _encode = make_encoder(None, _unserialisable, encode_basestring_ascii, None, ": ", ", ",
                           False, False, True)
    _encode_compact = make_encoder(None, _unserialisable, encode_basestring_ascii, None, ":",
                                   ",", False, False, True)


def loads(text: str | bytes | bytearray) -> object:
    """Parse one JSON document; ValueError (json.JSONDecodeError) when malformed."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if make_scanner is None:
        import json

        return json.loads(text)
    document = text.strip(_WHITESPACE)
    try:
        value, end = _scan(document, 0)
    except StopIteration as stop:
        raise ValueError(f"Expecting value: char {stop.value}") from None
    if end != len(document):
        raise ValueError(f"Extra data: char {end}")
    return value


def dumps(value: object, *, compact: bool = False) -> str:
    """JSON, ASCII-escaped, as json.dumps(value) writes it; without spaces if `compact`."""
    if make_scanner is None:
        import json

        return json.dumps(value, separators=(",", ":") if compact else None)
    return "".join((_encode_compact if compact else _encode)(value, 0))
