"""Sans-IO codecs: bytes in, events or bytes out; no sockets, no asyncio."""
