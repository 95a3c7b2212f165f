"""The chunked transfer coding's decoder (moorage.protocol.chunked), fed in every split."""

from __future__ import annotations

import random

import pytest

from moorage.protocol.chunked import ChunkedDecoder, ChunkedError

BODY = bytes(range(256)) * 40


def encoded(sizes: list[int]) -> bytes:
    out, at = [], 0
    for size in sizes:
        out.append(b"%x;ext=1\r\n%s\r\n" % (size, BODY[at:at + size]) if size % 2
                   else b"%X\r\n%s\r\n" % (size, BODY[at:at + size]))
        at += size
    return b"".join(out) + b"0\r\nTrailer: yes\r\n\r\n"


def decode(data: bytes, cuts: list[int]) -> tuple[bytes, bytes, bool]:
    decoder = ChunkedDecoder()
    got = bytearray()
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        for piece in decoder.feed(memoryview(data)[start:end]):
            got += piece
        if decoder.done:
            return bytes(got), bytes(decoder.rest) + data[end:], True
    return bytes(got), b"", decoder.done


@pytest.mark.parametrize("seed", range(20))
def test_any_split_gives_the_body_and_what_follows(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 3000) for _ in range(rng.randint(1, 5))]
    data = encoded(sizes) + b"GET /next HTTP/1.1\r\n"
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 30)))
    body, rest, done = decode(data, cuts)
    assert done and body == BODY[:sum(sizes)] and rest == b"GET /next HTTP/1.1\r\n"


def test_byte_by_byte() -> None:
    data = encoded([5, 300, 1])
    assert decode(data, list(range(1, len(data))))[:2] == (BODY[:306], b"")


@pytest.mark.parametrize("data", [b"zz\r\n", b"\r\n", b"5\r\nhello!!", b"5\nhello\r\n",
                                  b"1" * 17 + b"\r\n", b"1;" + b"x" * 5000])
def test_malformed(data: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedDecoder().feed(memoryview(data))


def completion_of(prefix: bytes) -> bytes | None:
    decoder = ChunkedDecoder()
    decoder.feed(memoryview(prefix))
    return decoder.completion(100)


@pytest.mark.parametrize("prefix, ending", [
    (b"", b"0\r\n\r\n"),
    (b"3", b"\r\n\0\0\0\r\n0\r\n\r\n"),
    (b"3\r", b"\n\0\0\0\r\n0\r\n\r\n"),
    (b"3;x", b"\r\n\0\0\0\r\n0\r\n\r\n"),
    (b"0", b"\r\n\r\n"),
    (b"3\r\na", b"\0\0\r\n0\r\n\r\n"),
    (b"3\r\nabc", b"\r\n0\r\n\r\n"),
    (b"3\r\nabc\r", b"\n0\r\n\r\n"),
    (b"3\r\nabc\r\n", b"0\r\n\r\n"),
    (b"65\r\n", None),  # 101 zeros: over the limit
    (b"0\r\n", None),  # the body's data is over already
])
def test_completion_ends_the_body_where_the_parser_stopped(prefix: bytes,
                                                          ending: bytes | None) -> None:
    assert completion_of(prefix) == ending
    if ending is not None:  # and the two together are a whole, valid body
        assert decode(prefix + ending, [len(prefix)])[2]
