"""TLS and mutual TLS on the gRPC port: who gets in, and what a refused client is told."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from parley.auth.v1 import auth_pb2
from parley.client import ParleyClient, ParleyError, Tls, explain_connection_failure
from parley_server.app import App
from parley_server.settings import ConfigError
from parley_server.transport.server import RunningServer
from parley_server.transport.tls import ServerCertificates
from tests.helpers.accounts import Account
from tests.helpers.certificates import Pki, tls_server
from tests.helpers.stubs import Stubs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


async def _logged_in_user(port: int, tls: Tls | None, account: Account) -> str:
    async with ParleyClient(f"127.0.0.1:{port}", tls=tls) as client:
        user = await client.login(account.user.email, account.password)
        me = await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert me.user.id == user.id
    return str(user.email)


async def _refusal(port: int, tls: Tls | None) -> tuple[ParleyError, str | None]:
    """The error of a call that cannot connect, and what the client explains it as."""
    async with ParleyClient(f"127.0.0.1:{port}", tls=tls) as client:
        with pytest.raises(ParleyError) as raised:
            await client.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), timeout=10)
    return raised.value, explain_connection_failure(raised.value, tls)


async def test_tls_happy_path(stubs: Stubs, alice: Account, app: App, pki: Pki) -> None:
    async with tls_server(app, pki.server()) as running:
        assert running.certificates is not None and not running.certificates.mutual
        assert await _logged_in_user(running.port, pki.tls(), alice) == alice.user.email


async def test_mutual_tls_happy_path(stubs: Stubs, alice: Account, app: App, pki: Pki) -> None:
    client = pki.issue("ada", "ada.example.com")
    async with tls_server(app, pki.server(), client_ca=pki.ca) as running:
        assert running.certificates is not None and running.certificates.mutual
        assert await _logged_in_user(running.port, pki.tls(client), alice) == alice.user.email


async def test_a_server_certificate_from_another_ca_is_refused(app: App, pki: Pki, tmp_path: Path) -> None:
    stranger = Pki(tmp_path / "stranger")
    async with tls_server(app, stranger.server()) as running:
        error, explained = await _refusal(running.port, pki.tls())
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert explained == (
        "the server's TLS certificate was not accepted (unable to get local issuer certificate); check --ca"
    )


async def test_an_expired_server_certificate_is_refused(app: App, pki: Pki) -> None:
    async with tls_server(app, pki.server("expired-server", expired=True)) as running:
        _, explained = await _refusal(running.port, pki.tls())
    assert explained == "the server's TLS certificate was not accepted (certificate has expired); check --ca"


async def test_a_missing_client_certificate_is_refused(app: App, pki: Pki) -> None:
    async with tls_server(app, pki.server(), client_ca=pki.ca) as running:
        error, explained = await _refusal(running.port, pki.tls())
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert explained == ("the server refused the TLS connection; it requires a client certificate (--cert and --key)")


async def test_an_expired_client_certificate_is_refused(app: App, pki: Pki) -> None:
    expired = pki.issue("expired-client", "ada.example.com", expired=True)
    async with tls_server(app, pki.server(), client_ca=pki.ca) as running:
        _, explained = await _refusal(running.port, pki.tls(expired))
    assert explained == (
        "the server refused the TLS connection with this client certificate "
        "(expired, or not signed by a CA the server trusts)"
    )


async def test_a_client_certificate_from_another_ca_is_refused(app: App, pki: Pki, tmp_path: Path) -> None:
    foreign = Pki(tmp_path / "stranger").issue("foreign", "ada.example.com")
    async with tls_server(app, pki.server(), client_ca=pki.ca) as running:
        _, explained = await _refusal(running.port, pki.tls(foreign))
    assert explained is not None and "refused the TLS connection with this client certificate" in explained


async def test_plaintext_and_tls_mismatches_are_explained(app: App, pki: Pki, server: RunningServer) -> None:
    async with tls_server(app, pki.server()) as running:
        _, explained = await _refusal(running.port, None)
    assert explained == "the server closed the connection at once; it may require TLS (--tls)"
    _, explained = await _refusal(server.port, pki.tls())
    assert explained == "the server does not speak TLS; connect without --tls"


def test_unusable_files_stop_the_server_with_a_sentence(pki: Pki) -> None:
    server = pki.server()
    other = pki.issue("other", "127.0.0.1")
    with pytest.raises(ConfigError, match="cannot use the TLS files"):
        ServerCertificates(server.cert, other.key, None)
    with pytest.raises(ConfigError, match="cannot use the TLS files"):
        ServerCertificates(server.cert, server.key, server.key)
