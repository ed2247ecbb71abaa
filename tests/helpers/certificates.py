"""Certificates for the TLS tests, made by trustme, written as PEM files.

`Pki` is one CA with what a test needs from it: the server's certificate
(for 127.0.0.1 and localhost), a client certificate, and expired ones of
each. `Pki()` again is a stranger CA, for "wrong CA" cases.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import trustme

from parley.client import Tls
from parley_server.app import App
from parley_server.transport.server import RunningServer, start_server

EXPIRED_FROM = datetime(2020, 1, 1, tzinfo=UTC)
EXPIRED_UNTIL = datetime(2021, 1, 1, tzinfo=UTC)
SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclasses.dataclass(frozen=True)
class Pair:
    """A certificate chain and its key, as files."""

    cert: Path
    key: Path

    def der(self) -> bytes:
        """The leaf certificate, DER: what a peer sees in the handshake."""
        first = self.cert.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
        return ssl.PEM_cert_to_DER_cert(first)


class Pki:
    """A CA in directory, and certificates it issues."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._ca = trustme.CA()
        self.ca = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca))

    def issue(self, name: str, *identities: str, common_name: str | None = None, expired: bool = False) -> Pair:
        """A certificate for identities (subject alternative names), written as name.pem / name.key."""
        not_before, not_after = (EXPIRED_FROM, EXPIRED_UNTIL) if expired else (None, None)
        leaf = self._ca.issue_cert(*identities, common_name=common_name, not_before=not_before, not_after=not_after)
        pair = Pair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        pair.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(pair.key))
        return pair

    def server(self, name: str = "server", *, expired: bool = False) -> Pair:
        return self.issue(name, *SERVER_NAMES, expired=expired)

    def tls(self, client: Pair | None = None) -> Tls:
        """What a client of a server with this CA's certificate passes, with client's certificate if given."""
        return Tls(self.ca, client.cert if client else None, client.key if client else None)


@asynccontextmanager
async def tls_server(
    app: App, server: Pair, client_ca: Path | None = None, **settings: object
) -> AsyncIterator[RunningServer]:
    """A server on the test app (its database and caches) with TLS, and mutual TLS with client_ca."""
    update = {"tls_cert_file": server.cert, "tls_key_file": server.key, "tls_client_ca_file": client_ca, **settings}
    running = await start_server(
        dataclasses.replace(app, settings=app.settings.model_copy(update=update)), "127.0.0.1:0"
    )
    try:
        yield running
    finally:
        await running.stop(0)


def peer_certificate(port: int, tls: Tls) -> bytes:
    """The certificate (DER) a new TLS connection to 127.0.0.1:port is shown."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        peer = sock.getpeercert(binary_form=True)
    assert peer is not None
    return peer
