"""SPDY/3.1 framing, as kubelet's streaming server and its clients (crictl, critest,
client-go through moby/spdystream) speak it: sans-IO, frames in and out. Header blocks
are zlib streams primed with the SPDY/3 dictionary, one stream per direction for the
whole connection."""

from __future__ import annotations

import struct
import zlib

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
_VERSION = 3

# The SPDY/3 specification's header dictionary (2.6.10.1), byte for byte.
DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00'
    b'\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00'
    b'\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-'
    b'ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache'
    b'-control\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10conten'
    b't-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length'
    b'\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-r'
    b'ange\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expe'
    b'ct\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00'
    b'\x00\x00\x11if-modified-since\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-rang'
    b'e\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00\x08loc'
    b'ation\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authent'
    b'icate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer'
    b'\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer'
    b'\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\nuser-agent\x00\x00'
    b'\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate'
    b'\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00'
    b'\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00'
    b'\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin10010120120'
    b'220520630030230330430530630740240540640740840941'
    b'0411412413414415416417502504505203 Non-Authorita'
    b'tive Information204 No Content301 Moved Permanen'
    b'tly400 Bad Request401 Unauthorized403 Forbidden4'
    b'04 Not Found500 Internal Server Error501 Not Imp'
    b'lemented503 Service UnavailableJan Feb Mar Apr M'
    b'ay Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tu'
    b'e, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html'
    b',image/png,image/jpg,image/gif,application/xml,a'
    b'pplication/xhtml+xml,text/plain,text/javascript,'
    b'publicprivatemax-age=gzip,deflate,sdchcharset=ut'
    b'f-8charset=iso-8859-1,utf-,*,enq=0.'
)


class Frame:
    __slots__ = ("control", "data", "flags", "headers", "kind", "stream_id")

    def __init__(self, control: bool, kind: int, flags: int, stream_id: int,
                 data: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.control = control
        self.kind = kind            # a control frame's type; 0 for data
        self.flags = flags
        self.stream_id = stream_id
        self.data = data
        self.headers = headers or {}


class Codec:
    """One connection's frames: `feed` bytes in, `frames()` out; `syn_reply`, `data`,
    `ping` encode what the server sends."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            first, second, flags_length = struct.unpack(">HHI", self._buffer[:8])
            length = flags_length & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = flags_length >> 24
            if first & 0x8000:
                frames.append(self._control(second, flags, payload))
            else:
                frames.append(Frame(False, 0, flags, (first << 16 | second) & 0x7FFFFFFF,
                                    payload))
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame:
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            block = payload[10:] if kind == SYN_STREAM else payload[4:]
            return Frame(True, kind, flags, stream_id, headers=self._headers(block))
        stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF if len(payload) >= 4 \
            else 0
        return Frame(True, kind, flags, stream_id, payload)

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        count = struct.unpack(">I", raw[:4])[0]
        offset, found = 4, {}
        for _ in range(count):
            size = struct.unpack(">I", raw[offset:offset + 4])[0]
            name = raw[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
            size = struct.unpack(">I", raw[offset:offset + 4])[0]
            found[name.lower()] = raw[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
        return found

    def syn_reply(self, stream_id: int) -> bytes:
        block = self._deflate.compress(struct.pack(">I", 0)) \
            + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id & 0x7FFFFFFF,
                           (FLAG_FIN if fin else 0) << 24 | len(data)) + data

    @staticmethod
    def rst(stream_id: int, status: int = 1) -> bytes:
        """A stream refused (status 1: PROTOCOL_ERROR)."""
        return _control(RST_STREAM, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, status))

    @staticmethod
    def echo(frame: Frame) -> bytes:
        """A PING answered with its own id."""
        return _control(PING, 0, frame.data)


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | _VERSION, kind, flags << 24 | len(payload)) + payload
