"""TLS on the gRPC port: the server's certificates, reloadable while serving.

The server's credentials are gRPC's dynamic SSL credentials: Core asks a
fetcher for the certificate configuration at every new TLS handshake, and
the fetcher answers None ("unchanged") until `reload()` has read new files.
Connections already open keep the session they negotiated, so a reload
(`parley serve` does one on SIGHUP) drops no stream, and the next connection
gets the new certificate.

Files are checked before they are used, by loading them into an
`ssl.SSLContext` (the certificate must match its key, the CA must parse): at
start a bad file stops the server with a sentence naming it; on reload it is
logged and the certificates in use stay.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import grpc

from parley_server.settings import ConfigError, Settings

log = logging.getLogger(__name__)


class ServerCertificates:
    """The server certificate, its key and the optional client CA, read from files."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        self._files = (cert_file, key_file, client_ca_file)
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._initial = self._read()

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerCertificates | None:
        """The certificates the settings name; None for plaintext gRPC."""
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return None
        return cls(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by the client CA."""
        return self._files[2] is not None

    def credentials(self) -> grpc.ServerCredentials:
        # The stubs leave out that the fetcher may answer None (gRPC's "unchanged").
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self._fetch)
        return grpc.dynamic_ssl_server_credentials(self._initial, fetch, require_client_authentication=self.mutual)

    def reload(self) -> bool:
        """Read the files again for the next handshakes; False (logged) if they cannot be used."""
        try:
            configuration = self._read()
        except ConfigError as exc:
            log.error("TLS certificates not reloaded, the previous ones stay in use: %s", exc)
            return False
        with self._lock:
            self._pending = configuration
        log.info("TLS certificates reloaded from %s", self._files[0])
        return True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC Core (on its own thread) before each handshake."""
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert_file, key_file, ca_file = self._files
        try:
            check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            check.load_cert_chain(cert_file, key_file)
            if ca_file is not None:
                check.load_verify_locations(ca_file)
            chain, key = cert_file.read_bytes(), key_file.read_bytes()
            roots = ca_file.read_bytes() if ca_file is not None else None
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(str(path) for path in self._files if path is not None)
            raise ConfigError(f"cannot use the TLS files {files}: {exc}") from exc
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)
