"""Settings read from environment variables, in one place.

Every setting has a default that works on a developer's machine; the README's
configuration table lists the same names. Settings are immutable once read so
that every part of the process sees one consistent configuration.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

JWT_SECRET_FILE = "jwt-secret"


class ConfigError(ValueError):
    """A setting has a value the server cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; ValueError when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(address)
    return host.strip("[]"), int(port)


def _host_port(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        split_host_port(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be host:port, got {value!r}") from exc
    return value


def _loopback(env: Mapping[str, str], name: str, default: str) -> str:
    """A host:port on the loopback interface (admin endpoints must not be reachable)."""
    value = _host_port(env, name, default)
    if split_host_port(value)[0] not in {"127.0.0.1", "localhost", "::1"}:
        raise ConfigError(f"{name} must listen on 127.0.0.1 (loopback only), got {value!r}")
    return value


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:]+\](:\d{1,5})?$")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated browser origins (scheme://host[:port], no path)."""
    origins = tuple(o.strip().rstrip("/") for o in env.get(name, "").split(",") if o.strip())
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ConfigError(f"{name} must list origins like http://example.com:8080, got {origin!r}")
    return origins


@dataclass(frozen=True)
class SmtpSettings:
    """How the SMTP email backend reaches its relay."""

    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: str = ""
    # "none", "starttls" (upgrade after connect) or "tls" (implicit TLS).
    security: str = "none"
    timeout_seconds: int = 15


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one Parley process."""

    database_url: str | None
    grpc_addr: str
    data_dir: Path
    jwt_secret: str | None
    jwt_issuer: str = "parley"
    jwt_audience: str = "parley-api"
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # How long a validated session is trusted without asking the database.
    session_cache_seconds: int = 5
    email_backend: str = "outbox"
    email_from: str = "Parley <no-reply@parley.localhost>"
    public_url: str = "http://127.0.0.1:8080"
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    waitlist_enabled: bool = False
    login_max_failures_per_email: int = 5
    login_max_failures_per_client: int = 50
    login_failure_window_seconds: int = 15 * 60
    verification_emails_per_hour: int = 3
    shutdown_grace_seconds: int = 10
    # Argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    max_message_bytes: int = 4 * 1024 * 1024
    # Pause before each word of the offline echo provider, so its replies
    # stream like a model's (0 in tests that only want the text).
    echo_delay_ms: int = 30
    # Longest wait for an OpenAI-compatible endpoint to connect or send the
    # next chunk; a stalled provider fails the generation instead of hanging it.
    provider_timeout_seconds: int = 60
    # A generation is stopped (FAILED, text kept) after this many seconds.
    generation_timeout_seconds: int = 300
    # Streaming text is written to PostgreSQL at most this often (a crash
    # loses at most this much of an answer).
    persist_interval_ms: int = 500
    # How often each replica looks for generations orphaned by a dead replica.
    sweep_interval_seconds: int = 10
    # PostgreSQL connections each server process keeps open (plus a few
    # more in bursts); replicas x this must stay under max_connections.
    db_pool_size: int = 30
    # How often expired sessions, tokens, counters and old request ids are deleted.
    housekeeping_interval_seconds: int = 600
    log_level: str = "INFO"
    # The Envoy gRPC-web bridge in front of the gRPC server (and the web page).
    envoy_addr: str = "127.0.0.1:8080"
    # Envoy's admin interface; loopback only, it can stop the proxy.
    envoy_admin_addr: str = "127.0.0.1:9901"
    # Origins allowed to call through Envoy from another origin (CORS); empty
    # means the page's own origins, see envoy_config.default_origins.
    allowed_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from env (default: os.environ)."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("PARLEY_DATA_DIR") or platformdirs.user_data_dir("parley"))
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            grpc_addr=env.get("PARLEY_GRPC_ADDR") or "127.0.0.1:50051",
            data_dir=data_dir,
            jwt_secret=env.get("PARLEY_JWT_SECRET") or None,
            access_token_ttl_seconds=_int(env, "PARLEY_ACCESS_TOKEN_TTL", 15 * 60),
            refresh_token_ttl_seconds=_int(env, "PARLEY_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
            session_cache_seconds=_int(env, "PARLEY_SESSION_CACHE_SECONDS", 5),
            email_backend=_choice(env, "PARLEY_EMAIL_BACKEND", "outbox", {"outbox", "smtp"}),
            email_from=env.get("PARLEY_EMAIL_FROM") or "Parley <no-reply@parley.localhost>",
            public_url=(env.get("PARLEY_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/"),
            smtp=SmtpSettings(
                host=env.get("PARLEY_SMTP_HOST") or "localhost",
                port=_int(env, "PARLEY_SMTP_PORT", 25),
                username=env.get("PARLEY_SMTP_USERNAME", ""),
                password=env.get("PARLEY_SMTP_PASSWORD", ""),
                security=_choice(env, "PARLEY_SMTP_SECURITY", "none", {"none", "starttls", "tls"}),
            ),
            waitlist_enabled=_bool(env, "PARLEY_WAITLIST", False),
            login_max_failures_per_email=_int(env, "PARLEY_LOGIN_MAX_FAILURES", 5),
            login_max_failures_per_client=_int(env, "PARLEY_LOGIN_MAX_FAILURES_PER_CLIENT", 50),
            login_failure_window_seconds=_int(env, "PARLEY_LOGIN_FAILURE_WINDOW", 15 * 60),
            shutdown_grace_seconds=_int(env, "PARLEY_SHUTDOWN_GRACE", 10),
            argon2_time_cost=_int(env, "PARLEY_ARGON2_TIME_COST", 3),
            argon2_memory_kib=_int(env, "PARLEY_ARGON2_MEMORY_KIB", 65536),
            log_level=(env.get("PARLEY_LOG_LEVEL") or "INFO").upper(),
            echo_delay_ms=_int(env, "PARLEY_ECHO_DELAY_MS", 30),
            provider_timeout_seconds=_int(env, "PARLEY_PROVIDER_TIMEOUT", 60),
            generation_timeout_seconds=_int(env, "PARLEY_GENERATION_TIMEOUT", 300),
            persist_interval_ms=_int(env, "PARLEY_PERSIST_INTERVAL_MS", 500),
            sweep_interval_seconds=_int(env, "PARLEY_SWEEP_INTERVAL", 10),
            db_pool_size=_int(env, "PARLEY_DB_POOL_SIZE", 30),
            housekeeping_interval_seconds=_int(env, "PARLEY_HOUSEKEEPING_INTERVAL", 600),
            envoy_addr=_host_port(env, "PARLEY_ENVOY_ADDR", "127.0.0.1:8080"),
            envoy_admin_addr=_loopback(env, "PARLEY_ENVOY_ADMIN_ADDR", "127.0.0.1:9901"),
            allowed_origins=_origins(env, "PARLEY_ALLOWED_ORIGINS"),
        )

    def resolved_jwt_secret(self) -> str:
        """The signing secret: PARLEY_JWT_SECRET, else one generated once and kept
        in the data dir (mode 0600) so tokens survive restarts."""
        if self.jwt_secret:
            if len(self.jwt_secret) < 32:
                raise ConfigError("PARLEY_JWT_SECRET must be at least 32 characters")
            return self.jwt_secret
        path = self.data_dir / JWT_SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: processes starting together on
        # a fresh data dir all end up with the one secret that was linked
        # first, and none can read a half-written file.
        draft = self.data_dir / f"{JWT_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won
        finally:
            draft.unlink()
        return path.read_text().strip()
