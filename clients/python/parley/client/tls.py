"""TLS for the client: channel credentials from PEM files, and what a refused handshake means.

A server that refuses the client's certificate (or its absence) closes the
connection during the TLS handshake without saying why: all gRPC reports is
UNAVAILABLE, "Socket closed". The client knows what it offered, so
`explain_connection_failure` turns that, and the handshake errors OpenSSL does
name (an untrusted or expired server certificate, a server without TLS),
into a sentence saying what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from parley.client.errors import ParleyError

__all__ = ["Tls", "explain_connection_failure"]

# What gRPC's message holds when OpenSSL refused the server's certificate.
_VERIFY_FAILED = "CERTIFICATE_VERIFY_FAILED: "
_NOT_TLS = "WRONG_VERSION_NUMBER"
_CLOSED = "Socket closed"
_NO_CONNECTION = "failed to connect to all addresses"


@dataclass(frozen=True)
class Tls:
    """How to reach a server over TLS: the CA that signed its certificate (None:
    the system's roots), and a client certificate and key for mutual TLS."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files (read now; OSError if one cannot be read)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes() if self.ca_file else None,
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )


def explain_connection_failure(error: ParleyError, tls: Tls | None) -> str | None:
    """A sentence for a call that failed because no connection could be set up
    (TLS mismatch, refused certificates); None for any other failure."""
    message = error.message
    if error.code is not grpc.StatusCode.UNAVAILABLE or _NO_CONNECTION not in message:
        return None
    if _VERIFY_FAILED in message:
        why = message.split(_VERIFY_FAILED, 1)[1].rsplit(":", 1)[0].strip()
        return f"the server's TLS certificate was not accepted ({why}); check --ca"
    if _NOT_TLS in message:
        return "the server does not speak TLS; connect without --tls"
    if _CLOSED not in message:
        return None
    if tls is None:
        return "the server closed the connection at once; it may require TLS (--tls)"
    if tls.cert_file is None:
        return "the server refused the TLS connection; it requires a client certificate (--cert and --key)"
    return (
        "the server refused the TLS connection with this client certificate "
        "(expired, or not signed by a CA the server trusts)"
    )
