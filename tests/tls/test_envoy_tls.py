"""Envoy in front of a gRPC server with mutual TLS: its config, and gRPC-web calls through it."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parley_server.bridge.envoy_config import addresses, render
from parley_server.settings import ConfigError, Settings
from tests.helpers.certificates import Pki
from tests.helpers.envoy import validate
from tests.helpers.grpc_web import EMPTY_FRAME, GRPC_WEB, http
from tests.helpers.served import start, start_with_env


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _mutual_tls_env(pki: Pki, *, envoy_certificate: bool = True) -> dict[str, str]:
    server, envoy = pki.server(), pki.issue("envoy", "envoy.parley.internal")
    env = {
        "PARLEY_TLS_CERT_FILE": str(server.cert),
        "PARLEY_TLS_KEY_FILE": str(server.key),
        "PARLEY_TLS_CLIENT_CA_FILE": str(pki.ca),
        "PARLEY_ENVOY_TLS_CA_FILE": str(pki.ca),
    }
    if envoy_certificate:
        env |= {"PARLEY_ENVOY_TLS_CERT_FILE": str(envoy.cert), "PARLEY_ENVOY_TLS_KEY_FILE": str(envoy.key)}
    return env


def test_the_config_for_a_mutual_tls_server_validates(pki: Pki, tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path), **_mutual_tls_env(pki)})
    text = render(addresses(settings, grpc_port=50051, web_port=41000))
    assert "UpstreamTlsContext" in text and str(pki.directory / "envoy.pem") in text
    result = validate(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_plaintext_server_gets_a_plaintext_upstream(tmp_path: Path) -> None:
    text = render(addresses(Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)}), grpc_port=50051, web_port=41000))
    assert "UpstreamTlsContext" not in text and "RawBuffer" in text


def test_mutual_tls_without_a_certificate_for_envoy_is_a_config_error(pki: Pki, tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path), **_mutual_tls_env(pki, envoy_certificate=False)})
    with pytest.raises(ConfigError, match="PARLEY_ENVOY_TLS_CERT_FILE"):
        addresses(settings, grpc_port=50051, web_port=41000)


def test_grpc_web_through_envoy_to_a_mutual_tls_server(pki: Pki, tmp_path: Path) -> None:
    client = pki.issue("client", "client.example.com")
    served = start_with_env(tmp_path, _mutual_tls_env(pki), credentials=pki.tls(client).credentials())
    try:
        # Envoy's health check reaches the server over mutual TLS.
        status, _, clusters = http(f"http://{served.admin_addr}/clusters")
        assert status == 200
        health = [
            line
            for line in clusters.decode().splitlines()
            if line.startswith("parley_grpc::") and "health_flags" in line
        ]
        assert health and health[0].endswith("::healthy"), clusters.decode()
        # A call through Envoy reaches the server's interceptor, which answers it.
        status, headers, _ = http(
            f"{served.web_url}/parley.auth.v1.AuthService/GetCurrentUser",
            method="POST",
            headers={**GRPC_WEB, "authorization": "Bearer nonsense"},
            body=EMPTY_FRAME,
        )
        assert status == 200 and headers["grpc-status"] == "16"
        assert b"TOKEN_INVALID" in base64.b64decode(headers["grpc-status-details-bin"] + "==")
        status, _, body = http(
            f"{served.web_url}/grpc.health.v1.Health/Check", method="POST", headers=GRPC_WEB, body=EMPTY_FRAME
        )
        assert status == 200 and body[:7] == b"\x00\x00\x00\x00\x02\x08\x01"
    finally:
        assert served.stop() == 0, served.log_tail()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "self-signed.pem", directory / "self-signed.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_envoy_trusts_a_self_signed_server_certificate_by_default(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    served = start(
        tmp_path,
        credentials=grpc.ssl_channel_credentials(cert_file.read_bytes()),
        PARLEY_TLS_CERT_FILE=str(cert_file),
        PARLEY_TLS_KEY_FILE=str(key_file),
    )
    try:
        status, _, body = http(
            f"{served.web_url}/grpc.health.v1.Health/Check", method="POST", headers=GRPC_WEB, body=EMPTY_FRAME
        )
        assert status == 200 and body[:7] == b"\x00\x00\x00\x00\x02\x08\x01"
    finally:
        assert served.stop() == 0, served.log_tail()
