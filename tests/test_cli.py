"""The README flow, for real: `parley serve` as a process, driven with grpcurl.

Without DATABASE_URL the served process starts its own embedded PostgreSQL in
a fresh data directory, exactly as on a new machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.served import fresh_database

BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, env: dict[str, str], addr: str) -> None:
        self.env = env
        self.addr = addr

    def parley(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "parley"), *args], env={**self.env, **env}, capture_output=True, text=True, timeout=120
        )

    def grpcurl(self, *args: str, data: dict[str, object] | None = None, token: str = "") -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "grpcurl"), "-plaintext"]
        if token:
            cmd += ["-H", f"authorization: Bearer {token}"]
        if data is not None:
            cmd += ["-d", json.dumps(data)]
        return subprocess.run([*cmd, self.addr, *args], capture_output=True, text=True, timeout=60)

    def call(self, method: str, data: dict[str, object], token: str = "") -> dict[str, object]:
        result = self.grpcurl(method, data=data, token=token)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout or "{}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("served")
    addr = f"127.0.0.1:{free_port()}"
    # A database of its own: with DATABASE_URL a fresh one on that server
    # (never the named one); without, `parley serve` embeds PostgreSQL.
    database, drop_database = fresh_database()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        **database,
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_GRPC_ADDR": addr,
        # `parley serve` starts Envoy too: keep it off the default 8080/9901.
        "PARLEY_ENVOY_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_ENVOY_ADMIN_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_ARGON2_TIME_COST": "1",
        "PARLEY_ARGON2_MEMORY_KIB": "8192",
        "PARLEY_SHUTDOWN_GRACE": "2",
    }
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen([str(BIN / "parley"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    served = Served(env, addr)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"parley serve exited early:\n{(data_dir / 'serve.log').read_text()}")
        if served.grpcurl("grpc.health.v1.Health/Check").stdout.count("SERVING"):
            break
        time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"parley serve did not become healthy:\n{(data_dir / 'serve.log').read_text()}")
    served.process = process  # type: ignore[attr-defined]
    yield served
    if process.poll() is None:
        process.kill()
        process.wait()
    drop_database()


def test_grpcurl_lists_and_describes_without_proto_files(served: Served) -> None:
    listed = served.grpcurl("list")
    assert listed.returncode == 0, listed.stderr
    for service in ["parley.auth.v1.AuthService", "parley.chat.v1.ChatService", "grpc.health.v1.Health"]:
        assert service in listed.stdout
    described = served.grpcurl("describe", "parley.auth.v1.AuthService")
    assert "rpc Login ( .parley.auth.v1.LoginRequest ) returns ( .parley.auth.v1.LoginResponse )" in described.stdout
    message = served.grpcurl("describe", "parley.auth.v1.User")
    assert "email_verified" in message.stdout


def test_readme_grpcurl_walkthrough_runs(served: Served, repo_root: Path) -> None:
    """The README's grpcurl block, run verbatim by bash against a real server."""
    readme = (repo_root / "README.md").read_text()
    block = readme.split("<!-- grpcurl-walkthrough")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={**served.env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("parley.chat.v1.ChatService", "rpc Login", '"accepted"', '"delta"', '"completed"'):
        assert expected in result.stdout, expected
    assert '"content": "Echo: Hello there"' in result.stdout


def test_register_verify_from_outbox_login_and_call(served: Served) -> None:
    registered = served.call(
        "parley.auth.v1.AuthService/Register", {"email": "Grace@Example.com", "password": PASSWORD}
    )
    assert registered["user"]["email"] == "grace@example.com"  # type: ignore[index]

    outbox = served.parley("outbox", "--to", "grace@example.com")
    assert outbox.returncode == 0, outbox.stderr
    token = re.search(r"token=([\w-]+)", outbox.stdout)
    assert token, outbox.stdout
    verified = served.call("parley.auth.v1.AuthService/VerifyEmail", {"token": token.group(1)})
    assert verified["user"]["state"] == "USER_STATE_ACTIVE"  # type: ignore[index]

    login = served.call("parley.auth.v1.AuthService/Login", {"email": "grace@example.com", "password": PASSWORD})
    access = login["tokens"]["access_token"]  # type: ignore[index]
    me = served.call("parley.auth.v1.AuthService/GetCurrentUser", {}, token=access)
    assert me["user"]["email"] == "grace@example.com"  # type: ignore[index]

    anonymous = served.grpcurl("parley.auth.v1.AuthService/GetCurrentUser", data={})
    assert anonymous.returncode != 0 and "Unauthenticated" in anonymous.stderr
    assert "TOKEN_MISSING" in anonymous.stderr  # ErrorInfo details are printed by grpcurl


def test_create_admin_from_environment(served: Served) -> None:
    created = served.parley("create-admin", "boss@example.com", PARLEY_ADMIN_PASSWORD=PASSWORD)
    assert created.returncode == 0, created.stderr
    login = served.call("parley.auth.v1.AuthService/Login", {"email": "boss@example.com", "password": PASSWORD})
    assert login["user"]["role"] == "ROLE_ADMIN"  # type: ignore[index]


def test_create_admin_rejects_weak_password(served: Served) -> None:
    created = served.parley("create-admin", "weak@example.com", PARLEY_ADMIN_PASSWORD="short")
    assert created.returncode == 1
    assert "at least 10 characters" in created.stderr


def test_help_lists_subcommands() -> None:
    result = subprocess.run([str(BIN / "parley"), "--help"], capture_output=True, text=True)
    for command in ["serve", "migrate", "create-admin", "invite", "outbox", "chat"]:
        assert command in result.stdout


def test_bad_configuration_is_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "parley"), "migrate"],
        env={**os.environ, "PARLEY_DATA_DIR": str(tmp_path), "PARLEY_EMAIL_BACKEND": "pigeon"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "PARLEY_EMAIL_BACKEND" in result.stderr


def test_sigterm_stops_gracefully(served: Served) -> None:
    process: subprocess.Popen[bytes] = served.process  # type: ignore[attr-defined]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
