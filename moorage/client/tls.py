"""TLS for tcp:// hosts; imported only when TLS is on (ssl costs ~15 ms to import)."""

from __future__ import annotations

import socket
import ssl

from moorage.client.endpoint import TLSOptions


def wrap(sock: socket.socket, server_name: str, options: TLSOptions) -> socket.socket:
    """`--tlsverify` checks the daemon against --tlscacert; plain `--tls` only encrypts."""
    context = ssl.create_default_context(cafile=options.ca) if options.verify \
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.cert and options.key:
        context.load_cert_chain(options.cert, options.key)
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except Exception:
        sock.close()
        raise
