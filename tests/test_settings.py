"""Settings as an operator meets them: variables in, typed values out, bad
values refused with one sentence naming the variable, the generated JWT
secret on disk, and the effective values shown without secrets."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from parley_server.settings import MASK, ConfigError, Settings

SECRET = "a-jwt-secret-long-enough-to-sign-tokens"
# Settings naming files want files that exist: this one will do.
A_FILE = Path(__file__)

# Every variable with a value other than its default, and what the server then uses.
EVERY_VARIABLE: dict[str, tuple[str, str, object]] = {
    "DATABASE_URL": ("postgresql://u@db:5432/p", "database_url", "postgresql://u@db:5432/p"),
    "PARLEY_DB_SCHEMA": (" chat_2 ", "db_schema", "chat_2"),
    "PARLEY_GRPC_ADDR": ("0.0.0.0:6000", "grpc_addr", "0.0.0.0:6000"),
    "PARLEY_DATA_DIR": ("/srv/parley", "data_dir", Path("/srv/parley")),
    "PARLEY_JWT_ISSUER": ("issuer", "jwt_issuer", "issuer"),
    "PARLEY_JWT_AUDIENCE": ("audience", "jwt_audience", "audience"),
    "PARLEY_ACCESS_TOKEN_TTL_SECONDS": ("60", "access_token_ttl_seconds", 60),
    "PARLEY_REFRESH_TOKEN_TTL_SECONDS": ("3600", "refresh_token_ttl_seconds", 3600),
    "PARLEY_SESSION_CACHE_SECONDS": ("0", "session_cache_seconds", 0),
    "PARLEY_EMAIL_BACKEND": (" SMTP ", "email_backend", "smtp"),
    "PARLEY_EMAIL_FROM": ("Ops <ops@example.com>", "email_from", "Ops <ops@example.com>"),
    "PARLEY_PUBLIC_URL": ("https://chat.example.com/", "public_url", "https://chat.example.com"),
    "PARLEY_SMTP_HOST": ("mail.example.com", "smtp_host", "mail.example.com"),
    "PARLEY_SMTP_PORT": ("587", "smtp_port", 587),
    "PARLEY_SMTP_USERNAME": ("ops", "smtp_username", "ops"),
    "PARLEY_SMTP_SECURITY": ("StartTLS", "smtp_security", "starttls"),
    "PARLEY_SMTP_TIMEOUT_SECONDS": ("2", "smtp_timeout_seconds", 2),
    "PARLEY_WAITLIST": ("yes", "waitlist", True),
    "PARLEY_LOGIN_MAX_FAILURES_PER_EMAIL": ("7", "login_max_failures_per_email", 7),
    "PARLEY_LOGIN_MAX_FAILURES_PER_CLIENT": ("70", "login_max_failures_per_client", 70),
    "PARLEY_LOGIN_FAILURE_WINDOW_SECONDS": ("120", "login_failure_window_seconds", 120),
    "PARLEY_API_KEY_CALLS_PER_MINUTE": ("30", "api_key_calls_per_minute", 30),
    "PARLEY_ACCOUNT_EMAILS_PER_HOUR": ("9", "account_emails_per_hour", 9),
    "PARLEY_SHUTDOWN_GRACE_SECONDS": ("1", "shutdown_grace_seconds", 1),
    "PARLEY_ARGON2_TIME_COST": ("1", "argon2_time_cost", 1),
    "PARLEY_ARGON2_MEMORY_KIB": ("8192", "argon2_memory_kib", 8192),
    "PARLEY_MAX_MESSAGE_BYTES": ("1024", "max_message_bytes", 1024),
    "PARLEY_ECHO_DELAY_MS": ("0", "echo_delay_ms", 0),
    "PARLEY_PROVIDER_TIMEOUT_SECONDS": ("5", "provider_timeout_seconds", 5),
    "PARLEY_GENERATION_TIMEOUT_SECONDS": ("30", "generation_timeout_seconds", 30),
    "PARLEY_PERSIST_INTERVAL_MS": ("100", "persist_interval_ms", 100),
    "PARLEY_STREAM_FRAME_MS": ("0", "stream_frame_ms", 0),
    "PARLEY_SWEEP_INTERVAL_SECONDS": ("1", "sweep_interval_seconds", 1),
    "PARLEY_HOUSEKEEPING_INTERVAL_SECONDS": ("60", "housekeeping_interval_seconds", 60),
    "PARLEY_HEARTBEAT_INTERVAL_SECONDS": ("2", "heartbeat_interval_seconds", 2),
    "PARLEY_DB_POOL_SIZE": ("5", "db_pool_size", 5),
    "PARLEY_METRICS_ADDR": (" 0.0.0.0:9464 ", "metrics_addr", "0.0.0.0:9464"),
    "PARLEY_LOG_LEVEL": ("debug", "log_level", "DEBUG"),
    "PARLEY_UVLOOP": ("0", "uvloop", False),
    **{
        f"PARLEY_{field.upper()}": (str(A_FILE), field, A_FILE)
        for field in (
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "envoy_tls_ca_file",
            "envoy_tls_cert_file",
            "envoy_tls_key_file",
        )
    },
    "PARLEY_ENVOY_ADDR": ("0.0.0.0:8443", "envoy_addr", "0.0.0.0:8443"),
    "PARLEY_ENVOY_ADMIN_ADDR": ("[::1]:9999", "envoy_admin_addr", "[::1]:9999"),
    "PARLEY_ALLOWED_ORIGINS": (
        "https://chat.example.com, http://localhost:5173/",
        "allowed_origins",
        ("https://chat.example.com", "http://localhost:5173"),
    ),
    "OTEL_EXPORTER_OTLP_ENDPOINT": (
        " https://collector.example.com:4317 ",
        "otel_exporter_otlp_endpoint",
        "https://collector.example.com:4317",
    ),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("grpc", "otel_exporter_otlp_protocol", "grpc"),
    "OTEL_TRACES_SAMPLER_ARG": ("0.25", "otel_traces_sampler_arg", 0.25),
    "OTEL_SERVICE_NAME": ("parley-eu", "otel_service_name", "parley-eu"),
}
SECRETS = {
    "PARLEY_JWT_SECRET": ("jwt_secret", SECRET),
    "PARLEY_SMTP_PASSWORD": ("smtp_password", "smtp-password"),
    "PARLEY_ADMIN_PASSWORD": ("admin_password", "admin-password"),
}


def test_every_variable_reaches_its_setting() -> None:
    env = {name: raw for name, (raw, _, _) in EVERY_VARIABLE.items()}
    env |= {name: value for name, (_, value) in SECRETS.items()}
    settings = Settings.from_env(env)
    for name, (_, field, expected) in EVERY_VARIABLE.items():
        assert getattr(settings, field) == expected, name
    for name, (field, value) in SECRETS.items():
        assert getattr(settings, field).get_secret_value() == value, name
    # A setting added without a line above would go untested.
    assert {row.variable for row in settings.effective()} == EVERY_VARIABLE.keys() | SECRETS.keys()
    assert {row.source for row in settings.effective()} == {"environment"}


def test_unset_and_empty_variables_mean_the_defaults(tmp_path: Path) -> None:
    empty = Settings.from_env({name: "" for name in EVERY_VARIABLE.keys() | SECRETS.keys()})
    assert empty == Settings.from_env({})
    assert {row.source for row in empty.effective()} == {"default"}
    assert (empty.database_url, empty.jwt_secret, empty.allowed_origins) == (None, None, ())
    assert (empty.grpc_addr, empty.envoy_addr, empty.shutdown_grace_seconds) == (
        "127.0.0.1:50051",
        "127.0.0.1:8080",
        10,
    )


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        *(
            ("PARLEY_DB_SCHEMA", schema, "PARLEY_DB_SCHEMA must be a plain identifier: lower-case letters, digits")
            for schema in ("Parley", 'x"; DROP SCHEMA public; --', "pg_parley", "2chat", "a" * 41)
        ),
        ("PARLEY_SMTP_PORT", "twenty-five", "PARLEY_SMTP_PORT must be an integer, got 'twenty-five'"),
        ("PARLEY_SHUTDOWN_GRACE_SECONDS", "1.5", "PARLEY_SHUTDOWN_GRACE_SECONDS must be an integer, got '1.5'"),
        ("PARLEY_WAITLIST", "maybe", "PARLEY_WAITLIST must be true or false, got 'maybe'"),
        ("PARLEY_EMAIL_BACKEND", "pigeon", "PARLEY_EMAIL_BACKEND must be 'outbox' or 'smtp', got 'pigeon'"),
        ("PARLEY_SMTP_SECURITY", "ssl", "PARLEY_SMTP_SECURITY must be 'none', 'starttls' or 'tls', got 'ssl'"),
        ("PARLEY_ENVOY_ADDR", "8080", "PARLEY_ENVOY_ADDR must be host:port, got '8080'"),
        ("PARLEY_METRICS_ADDR", "9464", "PARLEY_METRICS_ADDR must be host:port, got '9464'"),
        (
            "PARLEY_ENVOY_ADMIN_ADDR",
            "0.0.0.0:9901",
            "PARLEY_ENVOY_ADMIN_ADDR must listen on 127.0.0.1 (loopback only), got '0.0.0.0:9901'",
        ),
        (
            "PARLEY_ALLOWED_ORIGINS",
            "https://ok.example.com,chat.example.com",
            "PARLEY_ALLOWED_ORIGINS must list origins like http://example.com:8080, "
            "got 'https://ok.example.com,chat.example.com'",
        ),
        ("PARLEY_LOG_LEVEL", "loud", "PARLEY_LOG_LEVEL must be one of CRITICAL, DEBUG, ERROR, FATAL, INFO, "),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT must be a URL like http://127.0.0.1:4317 (http: plaintext, https: TLS), "
            "got 'collector:4317'",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT must be a URL like http://127.0.0.1:4317",
        ),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", "OTEL_TRACES_SAMPLER_ARG must be between 0 and 1, got '1.5'"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/protobuf",
            "OTEL_EXPORTER_OTLP_PROTOCOL must be 'grpc', got 'http/protobuf'",
        ),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable(name: str, value: str, sentence: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(sentence)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PARLEY_SMTP_PORT": "x", "PARLEY_UVLOOP": "2"})
    assert str(caught.value) == (
        "PARLEY_SMTP_PORT must be an integer, got 'x'; PARLEY_UVLOOP must be true or false, got '2'"
    )


def test_a_short_jwt_secret_is_refused_without_being_repeated() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PARLEY_JWT_SECRET": "short-but-secret"})
    assert str(caught.value) == "PARLEY_JWT_SECRET must be at least 32 characters"


def test_effective_values_mask_secrets_and_name_their_source() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+asyncpg://parley:db-password@db:5432/parley",
            "PARLEY_JWT_SECRET": SECRET,
            "PARLEY_SMTP_PORT": "2525",
        }
    )
    shown = {row.variable: (row.value, row.source) for row in settings.effective()}
    assert shown["DATABASE_URL"] == (f"postgresql+asyncpg://parley:{MASK}@db:5432/parley", "environment")
    assert shown["PARLEY_JWT_SECRET"] == (MASK, "environment")
    assert shown["PARLEY_SMTP_PORT"] == ("2525", "environment")
    assert shown["PARLEY_SMTP_PASSWORD"] == ("", "default")
    assert shown["PARLEY_UVLOOP"] == ("true", "default")
    assert not any(secret in str(shown) for secret in (SECRET, "db-password"))


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)})
    secret = settings.resolved_jwt_secret()
    assert len(secret) >= 32 and settings.resolved_jwt_secret() == secret  # survives restarts
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["jwt-secret"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    """`serve --workers N` and replicas sharing a data dir on first start."""
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)})
    with ThreadPoolExecutor(16) as pool:
        secrets = list(pool.map(lambda _: settings.resolved_jwt_secret(), range(64)))
    assert len(set(secrets)) == 1
    assert [f.name for f in tmp_path.iterdir()] == ["jwt-secret"]  # no drafts left behind


def test_a_configured_secret_is_used_and_nothing_is_generated(tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path), "PARLEY_JWT_SECRET": SECRET})
    assert settings.resolved_jwt_secret() == SECRET
    assert not any(tmp_path.iterdir())


def test_a_variable_renamed_for_its_unit_is_refused_with_its_new_name() -> None:
    """An old name would otherwise be ignored and its value silently replaced by the default."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PARLEY_SHUTDOWN_GRACE": "30", "PARLEY_SWEEP_INTERVAL": "5"})
    assert str(caught.value) == (
        "PARLEY_SHUTDOWN_GRACE is now called PARLEY_SHUTDOWN_GRACE_SECONDS; "
        "PARLEY_SWEEP_INTERVAL is now called PARLEY_SWEEP_INTERVAL_SECONDS"
    )


def test_names_are_matched_exactly() -> None:
    """A lower-case spelling is not the variable the README documents, so it is not read."""
    assert Settings.from_env({"parley_smtp_port": "2525"}).smtp_port == 25
    assert Settings.from_env({"PARLEY_SMTP_PORT": "2525"}).smtp_port == 2525


def test_a_given_environment_is_the_only_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read from a mapping ignore the process's own variables (CI sets DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone@elsewhere/db")
    monkeypatch.setenv("PARLEY_SMTP_PORT", "2525")
    given = Settings.from_env({})
    assert (given.database_url, given.smtp_port) == (None, 25)
    assert Settings.from_env().database_url == "postgresql://someone@elsewhere/db"


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"PARLEY_TLS_CERT_FILE": str(A_FILE)}, "PARLEY_TLS_CERT_FILE and PARLEY_TLS_KEY_FILE must be set together"),
        (
            {"PARLEY_ENVOY_TLS_KEY_FILE": str(A_FILE)},
            "PARLEY_ENVOY_TLS_CERT_FILE and PARLEY_ENVOY_TLS_KEY_FILE must be set together",
        ),
        (
            {"PARLEY_TLS_CLIENT_CA_FILE": str(A_FILE)},
            "PARLEY_TLS_CLIENT_CA_FILE needs PARLEY_TLS_CERT_FILE (mutual TLS is TLS)",
        ),
        (
            {"PARLEY_TLS_KEY_FILE": "/no/such/file"},
            "PARLEY_TLS_KEY_FILE must name an existing file, got '/no/such/file'",
        ),
    ],
)
def test_tls_files_that_cannot_work_are_one_sentence(env: dict[str, str], sentence: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == sentence
