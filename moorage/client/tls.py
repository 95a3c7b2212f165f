"""TLS for tcp:// hosts; imported only when TLS is on (ssl costs ~15 ms to import)."""

from __future__ import annotations

import socket
import ssl

from moorage.client.errors import EndpointError
from moorage.client.tls_options import TLSOptions


def _context(options: TLSOptions) -> ssl.SSLContext:
    """`--tlsverify` checks the daemon against --tlscacert; plain `--tls` only encrypts."""
    import os

    for path in (options.ca if options.verify else None, options.cert, options.key):
        if path and not os.path.exists(path):  # docker's words for a missing CA or key file
            raise EndpointError(f"unable to resolve docker endpoint: open {path}: "
                                "no such file or directory")
    try:
        if options.verify:
            context = ssl.create_default_context(cafile=options.ca)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if options.cert and options.key:
            context.load_cert_chain(options.cert, options.key)
    except (ssl.SSLError, OSError) as err:
        raise EndpointError(f"unable to resolve docker endpoint: {err}") from None
    return context


def wrap(sock: socket.socket, server_name: str, options: TLSOptions) -> socket.socket:
    try:
        return _context(options).wrap_socket(sock, server_hostname=server_name)
    except ssl.SSLCertVerificationError as err:
        sock.close()
        raise EndpointError("error during connect: tls: failed to verify certificate: "
                            f"x509: {err.verify_message}") from None
    except BaseException:
        sock.close()
        raise
