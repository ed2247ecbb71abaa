"""The README flow, for real: `parley serve` as a process, driven with grpcurl.

Without DATABASE_URL the served process starts its own embedded PostgreSQL in
a fresh data directory, exactly as on a new machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley_server.cli import build_parser
from tests.helpers.accounts import PASSWORD
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import BIN, Served, start_served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`parley serve` as the README starts it (Envoy included), on a database of its own."""
    yield from start_served(tmp_path_factory.mktemp("served"))


def test_grpcurl_lists_and_describes_without_proto_files(served: Served) -> None:
    listed = served.grpcurl("list")
    assert listed.returncode == 0, listed.stderr
    for service in ["parley.auth.v1.AuthService", "parley.chat.v1.ChatService", "grpc.health.v1.Health"]:
        assert service in listed.stdout
    described = served.grpcurl("describe", "parley.auth.v1.AuthService")
    assert "rpc Login ( .parley.auth.v1.LoginRequest ) returns ( .parley.auth.v1.LoginResponse )" in described.stdout
    message = served.grpcurl("describe", "parley.auth.v1.User")
    assert "email_verified" in message.stdout


def test_readme_grpcurl_walkthrough_runs(served: Served) -> None:
    """The README's grpcurl block, run verbatim by bash against a real server."""
    readme = (REPO_ROOT / "README.md").read_text()
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
    assert '"rating": "RATING_THUMBS_DOWN"' in result.stdout and '"comment": "Only echoed me."' in result.stdout


def test_readme_api_key_walkthrough_runs(served: Served) -> None:
    """The README's API key block, run after the grpcurl walkthrough (for another user, lin)."""
    readme = (REPO_ROOT / "README.md").read_text()
    first = readme.split("<!-- grpcurl-walkthrough")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    keys = readme.split("<!-- api-keys-walkthrough")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    script = (first + keys).replace("ada@example.com", "lin@example.com")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**served.env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"prefix": "pk_' in result.stdout
    assert '"content": "Echo: Hello from the bot"' in result.stdout
    assert "service account 'support bot'" in result.stderr


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
    for command in [
        "serve",
        "migrate",
        "create-admin",
        "create-service-account",
        "invite",
        "outbox",
        "settings",
        "chat",
    ]:
        assert command in result.stdout


def test_workers_auto_is_one_per_usable_core() -> None:
    args = build_parser().parse_args(["serve", "--workers", "auto"])
    assert args.workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-2", "lots"])
def test_workers_refuses_what_is_not_a_count(value: str) -> None:
    result = subprocess.run([str(BIN / "parley"), "serve", "--workers", value], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"argument --workers: must be a positive number or 'auto', got '{value}'" in result.stderr


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any Parley setting of the developer's, plus settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") and k != "DATABASE_URL"}
    return {**base, **settings}


@pytest.mark.parametrize("command", ["serve", "migrate", "settings"])
def test_bad_configuration_stops_with_one_sentence(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [str(BIN / "parley"), command],
        env=clean_env(PARLEY_DATA_DIR=str(tmp_path), PARLEY_SHUTDOWN_GRACE_SECONDS="soon"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "parley: configuration error: PARLEY_SHUTDOWN_GRACE_SECONDS must be an integer, got 'soon'\n"
    )
    assert not any(tmp_path.iterdir()), "nothing started"


def test_settings_prints_effective_values_with_secrets_masked(tmp_path: Path) -> None:
    jwt_secret, smtp_password = "jwt-" + "s" * 40, "smtp-password-value"
    result = subprocess.run(
        [str(BIN / "parley"), "settings"],
        env=clean_env(
            PARLEY_DATA_DIR=str(tmp_path),
            PARLEY_SMTP_PORT="2525",
            PARLEY_JWT_SECRET=jwt_secret,
            PARLEY_SMTP_PASSWORD=smtp_password,
            DATABASE_URL="postgresql+asyncpg://parley:db-password@db.example.com/parley",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split("=", 1)[0]: line for line in result.stdout.splitlines()}
    assert re.fullmatch(r"PARLEY_SMTP_PORT=2525 +# environment", lines["PARLEY_SMTP_PORT"])
    assert re.fullmatch(rf"PARLEY_DATA_DIR={re.escape(str(tmp_path))} +# environment", lines["PARLEY_DATA_DIR"])
    assert re.fullmatch(r"PARLEY_GRPC_ADDR=127\.0\.0\.1:50051 +# default", lines["PARLEY_GRPC_ADDR"])
    assert re.fullmatch(r"PARLEY_JWT_SECRET=\*+ +# environment", lines["PARLEY_JWT_SECRET"])
    assert re.fullmatch(r"PARLEY_SMTP_PASSWORD=\*+ +# environment", lines["PARLEY_SMTP_PASSWORD"])
    assert "parley:*" in lines["DATABASE_URL"] and "@db.example.com/parley" in lines["DATABASE_URL"]
    for secret in (jwt_secret, smtp_password, "db-password"):
        assert secret not in result.stdout + result.stderr
    assert not any(tmp_path.iterdir()), "printing settings starts nothing and generates nothing"


def test_sigterm_stops_gracefully(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
