"""Parley's settings: every environment variable, declared once.

Each field of `Settings` is one variable, `PARLEY_` and the field's name in
capitals (DATABASE_URL and OpenTelemetry's standard `OTEL_` variables keep
their conventional names), with its type, default and meaning. The README's configuration table is generated from these
declarations (scripts/codegen.py) and `parley settings` prints their
effective values, so neither can disagree with the code. Settings are
validated and frozen once read, so every part of the process sees one
consistent configuration, and a bad value stops the process with one
sentence naming the variable.

This is the one module of the server that touches the environment: besides
the declared settings, `environment_variable` reads variables named at run
time, and `ensure_runtime_dir` and `share_metrics_through` set ones that a
library reads.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args
from urllib.parse import urlsplit

import platformdirs
from pydantic import AfterValidator, BeforeValidator, Field, FilePath, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "PARLEY_"
JWT_SECRET_FILE = "jwt-secret"
MIN_JWT_SECRET_LENGTH = 32
# What a secret's value looks like wherever settings are shown.
MASK = "**********"
# Variables renamed to carry their unit. Setting an old name is refused rather
# than ignored: the value would otherwise silently fall back to the default.
RENAMED = {
    "PARLEY_ACCESS_TOKEN_TTL": "PARLEY_ACCESS_TOKEN_TTL_SECONDS",
    "PARLEY_REFRESH_TOKEN_TTL": "PARLEY_REFRESH_TOKEN_TTL_SECONDS",
    "PARLEY_LOGIN_MAX_FAILURES": "PARLEY_LOGIN_MAX_FAILURES_PER_EMAIL",
    "PARLEY_LOGIN_FAILURE_WINDOW": "PARLEY_LOGIN_FAILURE_WINDOW_SECONDS",
    "PARLEY_SHUTDOWN_GRACE": "PARLEY_SHUTDOWN_GRACE_SECONDS",
    "PARLEY_PROVIDER_TIMEOUT": "PARLEY_PROVIDER_TIMEOUT_SECONDS",
    "PARLEY_GENERATION_TIMEOUT": "PARLEY_GENERATION_TIMEOUT_SECONDS",
    "PARLEY_SWEEP_INTERVAL": "PARLEY_SWEEP_INTERVAL_SECONDS",
    "PARLEY_HOUSEKEEPING_INTERVAL": "PARLEY_HOUSEKEEPING_INTERVAL_SECONDS",
}


class ConfigError(ValueError):
    """A setting has a value the server cannot use."""


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; ValueError when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(address)
    return host.strip("[]"), int(port)


# --- value types: each check is written once and named in the declarations --


def _host_port(value: str) -> str:
    value = value.strip()
    try:
        split_host_port(value)
    except ValueError:
        raise ValueError("must be host:port") from None
    return value


def _loopback(value: str) -> str:
    """Admin endpoints must not be reachable from other machines."""
    if split_host_port(value)[0] not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("must listen on 127.0.0.1 (loopback only)")
    return value


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:]+\](:\d{1,5})?$")


def _origins(value: object) -> object:
    """Comma-separated browser origins (scheme://host[:port], no path)."""
    if not isinstance(value, str):
        return value
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if not all(_ORIGIN.match(origin) for origin in origins):
        raise ValueError("must list origins like http://example.com:8080")
    return origins


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _log_level(value: str) -> str:
    value = value.strip().upper()
    if value not in logging.getLevelNamesMapping():
        raise ValueError(f"must be one of {', '.join(sorted(logging.getLevelNamesMapping()))}")
    return value


def _otlp_endpoint(value: str | None) -> str | None:
    """An OTLP/gRPC collector's URL; the scheme says whether to use TLS (the
    exporter would take a bare host:port to mean TLS, surprising a local collector)."""
    if value is None:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path.strip("/"):
        raise ValueError("must be a URL like http://127.0.0.1:4317 (http: plaintext, https: TLS)")
    return value


# A plain lower-case identifier, needing no quotes anywhere; short enough that
# the NOTIFY channels named after it (events/bus.py) fit PostgreSQL's 63 bytes.
DEFAULT_DB_SCHEMA = "parley"
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def _schema_name(value: str) -> str:
    value = value.strip()
    if not _SCHEMA.match(value) or value.startswith("pg_") or value == "information_schema":
        raise ValueError("must be a plain identifier: lower-case letters, digits and _, up to 40, not pg_*")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def _jwt_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < MIN_JWT_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_JWT_SECRET_LENGTH} characters")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]
LoopbackHostPort = Annotated[str, AfterValidator(_host_port), AfterValidator(_loopback)]
Origins = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_origins)]
EmailBackend = Annotated[Literal["outbox", "smtp"], BeforeValidator(_lower)]
SmtpSecurity = Annotated[Literal["none", "starttls", "tls"], BeforeValidator(_lower)]
Flag = Annotated[bool, BeforeValidator(_lower)]


def _shown(default: str) -> dict[str, Any]:
    """The default as the README shows it, for settings whose default is not a plain value."""
    return {"shown_default": default}


class Settings(BaseSettings):
    """The whole configuration of one Parley process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True)

    database_url: str | None = Field(
        None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL, e.g. `postgresql+asyncpg://user:pw@host:5432/db` "
        "(`postgresql://` is accepted too)",
        json_schema_extra=_shown("unset: embedded PostgreSQL"),
    )
    db_schema: Annotated[str, AfterValidator(_schema_name)] = Field(
        DEFAULT_DB_SCHEMA,
        description="the PostgreSQL schema holding all of Parley's tables, types and functions (created if missing); "
        "Parley touches nothing outside it, so it can share a database with another application. A database "
        "of a Parley that kept its tables elsewhere (`public`) has them moved here at the first start",
    )
    grpc_addr: str = Field("127.0.0.1:50051", description="where the gRPC server listens (`serve --addr` overrides it)")
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("parley")),
        description="embedded database, generated secrets and Envoy's config",
        json_schema_extra=_shown("the user data dir (`~/.local/share/parley`)"),
    )
    jwt_secret: Annotated[SecretStr | None, AfterValidator(_jwt_secret)] = Field(
        None,
        description=f"HS256 signing secret ({MIN_JWT_SECRET_LENGTH}+ chars). Set the same value on every replica.",
        json_schema_extra=_shown(f"generated once, kept in `PARLEY_DATA_DIR/{JWT_SECRET_FILE}`"),
    )
    jwt_issuer: str = Field("parley", description="`iss` claim of access tokens; tokens with another are refused")
    jwt_audience: str = Field("parley-api", description="`aud` claim of access tokens; tokens with another are refused")
    access_token_ttl_seconds: int = Field(15 * 60, description="access token lifetime")
    refresh_token_ttl_seconds: int = Field(30 * 24 * 3600, description="refresh token (session) lifetime")
    session_cache_seconds: int = Field(
        5,
        description="how long a replica trusts a checked session before asking the database again "
        "(logout on another replica takes effect within this time)",
    )
    email_backend: EmailBackend = Field(
        "outbox",
        description="`outbox` (store emails in the database; `parley outbox` prints them) or `smtp`",
    )
    email_from: str = Field("Parley <no-reply@parley.localhost>", description="sender of emails")
    public_url: Annotated[str, AfterValidator(lambda url: url.rstrip("/"))] = Field(
        "http://127.0.0.1:8080", description="base of links in emails"
    )
    smtp_host: str = Field("localhost", description="SMTP relay host")
    smtp_port: int = Field(25, description="SMTP relay port")
    smtp_username: str = Field("", description="SMTP login, if the relay wants one")
    smtp_password: SecretStr | None = Field(None, description="SMTP password, if the relay wants one")
    smtp_security: SmtpSecurity = Field(
        "none", description="`none`, `starttls` (upgrade after connecting) or `tls` (implicit TLS)"
    )
    smtp_timeout_seconds: int = Field(
        15, description="longest wait for the SMTP relay; an email it does not take is logged, never retried"
    )
    waitlist: Flag = Field(False, description="when true, registrations without a valid invite code are `WAITLISTED`")
    login_max_failures_per_email: int = Field(
        5, description="failed logins per email per window before `RESOURCE_EXHAUSTED`"
    )
    login_max_failures_per_client: int = Field(50, description="failed logins per client address per window")
    login_failure_window_seconds: int = Field(
        15 * 60, description="window of the failed-login limits (counters live in PostgreSQL, shared by replicas)"
    )
    api_key_calls_per_minute: int = Field(
        600,
        description="calls per API key per minute before `RESOURCE_EXHAUSTED` with RetryInfo (counters live in "
        "PostgreSQL, shared by replicas; 0 = no limit)",
    )
    account_emails_per_hour: int = Field(
        3,
        description="verification emails resent per account, and password-reset emails sent per address, each "
        "per hour (one more resend fails with `RESOURCE_EXHAUSTED`; one more reset request is answered but "
        "sends nothing)",
    )
    shutdown_grace_seconds: int = Field(
        10,
        description="at most this long for in-flight RPCs (and running generations) on shutdown; the process "
        "exits as soon as they are done (open `WatchConversation` streams end at once with `UNAVAILABLE`, "
        "reason `SHUTTING_DOWN`)",
    )
    argon2_time_cost: int = Field(
        3, description="Argon2id passes per password hash (the defaults are RFC 9106's low-memory profile)"
    )
    argon2_memory_kib: int = Field(65536, description="Argon2id memory per password hash")
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        description="largest gRPC message received or sent; a larger one fails with `RESOURCE_EXHAUSTED`",
    )
    echo_delay_ms: int = Field(
        30, description="pause per word of the offline `echo` provider, so its replies stream like a model's"
    )
    provider_timeout_seconds: int = Field(
        60, description="longest wait for an OpenAI-compatible endpoint to connect or send the next chunk"
    )
    generation_timeout_seconds: int = Field(
        300, description="a generation still running after this long is stopped (FAILED, text kept)"
    )
    persist_interval_ms: int = Field(
        500, description="streaming text is written to PostgreSQL at most this often (a crash loses at most this much)"
    )
    stream_frame_ms: int = Field(
        100,
        description="a chat stream sends text at most this often: what a model produces within one interval "
        "travels as one delta (the first at once; 0 sends each piece as it comes); while the server runs behind, "
        "the interval stretches by as much, up to 10 times",
    )
    sweep_interval_seconds: int = Field(
        10,
        description="how often each replica marks FAILED (text kept) the generations that no process runs any "
        "more: those of replicas that died, and its own that no generation of it runs (at two sweeps in a row)",
    )
    housekeeping_interval_seconds: int = Field(
        600,
        description="time between deletions of what has expired: sessions and email tokens a day past expiry or "
        "revocation, rate-limit counters past their window, request ids older than 7 days (one replica per round)",
    )
    heartbeat_interval_seconds: int = Field(
        5,
        description="how often each server process records its address, version and load in PostgreSQL for "
        "`GetSystemHealth`; a process whose record is three intervals old (killed, or cut off) is no longer "
        "listed, a clean exit removes it at once",
    )
    db_pool_size: int = Field(
        30,
        description="PostgreSQL connections per server process (a third more in bursts); keep replicas × this "
        "under the server's `max_connections`",
    )
    metrics_addr: HostPort | None = Field(
        None,
        description="where the Prometheus endpoint listens (`http://ADDR/metrics`), e.g. `127.0.0.1:9464`; per-RPC "
        "metrics and the database pools' gauges are recorded only when it is set. With `serve --workers N` the "
        "parent serves every worker's metrics",
        json_schema_extra=_shown("unset: no endpoint"),
    )
    log_level: Annotated[str, AfterValidator(_log_level)] = Field(
        "INFO",
        description="log level; each RPC logs one JSON line (method, code, ms, user, request id), "
        "written within 50 ms together with the other lines of that moment",
    )
    uvloop: Flag = Field(True, description="`false` runs on the standard asyncio loop instead of uvloop")
    tls_cert_file: FilePath | None = Field(
        None,
        description="PEM certificate chain of the gRPC server: when set, the gRPC port speaks TLS only. "
        "Reloaded (with the key and client CA) on SIGHUP; open connections keep theirs",
        json_schema_extra=_shown("unset: plaintext gRPC"),
    )
    tls_key_file: FilePath | None = Field(
        None, description="PEM private key of `PARLEY_TLS_CERT_FILE` (required with it)"
    )
    tls_client_ca_file: FilePath | None = Field(
        None,
        description="PEM CA certificates for client certificates: when set, every client must present a "
        "certificate they signed (mutual TLS), and a service account's key bound to the certificate's "
        "identity authenticates calls without a bearer token",
        json_schema_extra=_shown("unset: no client certificates"),
    )
    envoy_tls_ca_file: FilePath | None = Field(
        None,
        description="PEM CA Envoy checks the gRPC server's certificate with, when the server has TLS",
        json_schema_extra=_shown("`PARLEY_TLS_CERT_FILE` itself, for a self-signed one"),
    )
    envoy_tls_cert_file: FilePath | None = Field(
        None,
        description="PEM client certificate Envoy presents to the gRPC server; required with "
        "`PARLEY_TLS_CLIENT_CA_FILE` unless `serve --no-envoy`. Read when Envoy starts",
        json_schema_extra=_shown("unset"),
    )
    envoy_tls_key_file: FilePath | None = Field(
        None, description="PEM private key of `PARLEY_ENVOY_TLS_CERT_FILE` (required with it)"
    )
    envoy_addr: HostPort = Field(
        "127.0.0.1:8080",
        description="where Envoy serves the web page and gRPC-web (`0.0.0.0:8080` for all interfaces)",
    )
    envoy_admin_addr: LoopbackHostPort = Field(
        "127.0.0.1:9901", description="Envoy's admin interface; loopback addresses only (it can stop the proxy)"
    )
    allowed_origins: Origins = Field(
        (),
        description="comma-separated browser origins allowed to call gRPC-web from another site (CORS), e.g. "
        "`https://chat.example.com,http://localhost:5173`. Default: `http://127.0.0.1:PORT` and "
        "`http://localhost:PORT` of `PARLEY_ENVOY_ADDR`, plus the origin of `PARLEY_PUBLIC_URL`",
        json_schema_extra=_shown("the page's own origins"),
    )
    otel_exporter_otlp_endpoint: Annotated[str | None, AfterValidator(_otlp_endpoint)] = Field(
        None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OpenTelemetry collector that receives traces over OTLP/gRPC, e.g. `http://127.0.0.1:4317` "
        "(`https://` for TLS). Set, each RPC is traced with its SQL statements and model-provider calls, and "
        "log lines carry the trace id",
        json_schema_extra=_shown("unset: no tracing, at no cost"),
    )
    otel_exporter_otlp_protocol: Literal["grpc"] = Field(
        "grpc",
        validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL",
        description="OTLP transport; only `grpc` (port 4317) is supported, so a collector set up for "
        "`http/protobuf` is refused at start rather than silently sent nothing",
    )
    otel_traces_sampler_arg: Annotated[float, AfterValidator(_fraction)] = Field(
        1.0,
        validation_alias="OTEL_TRACES_SAMPLER_ARG",
        description="the fraction of RPCs that start a trace (0 to 1; the ratio of OpenTelemetry's "
        "`parentbased_traceidratio`, the sampler Parley uses): below 1 tracing costs proportionally less. A "
        "caller's `traceparent` decides for its calls either way",
    )
    otel_service_name: str = Field(
        "parley", validation_alias="OTEL_SERVICE_NAME", description="`service.name` of the traces this process sends"
    )
    admin_password: SecretStr | None = Field(
        None,
        description="password of the administrator `parley create-admin` creates or promotes",
        json_schema_extra=_shown("unset: `parley create-admin` asks for it"),
    )

    @model_validator(mode="after")
    def _tls_files_in_pairs(self) -> Settings:
        """A certificate needs its key, and client certificates need a server certificate."""
        pairs = [
            ("tls_cert_file", "tls_key_file"),
            ("envoy_tls_cert_file", "envoy_tls_key_file"),
        ]
        for cert, key in pairs:
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                raise ValueError(f"{env_name(cert)} and {env_name(key)} must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError(f"{env_name('tls_client_ca_file')} needs {env_name('tls_cert_file')} (mutual TLS is TLS)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values handed in: from_env reads the environment it is given,
        and validation must not read the process's environment behind its back
        (it did: a test's empty mapping picked up the shell's DATABASE_URL)."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from env (default: the process environment); ConfigError
        names each variable whose value cannot be used."""
        environment = os.environ if env is None else env
        renamed = [f"{old} is now called {new}" for old, new in RENAMED.items() if old in environment]
        if renamed:
            raise ConfigError("; ".join(renamed))
        source = _Environment(cls, environment)
        try:
            # Validated from the environment's values alone: model_validate
            # skips BaseSettings.__init__, which would read os.environ again.
            return cls.model_validate(source())
        except ValidationError as exc:
            raise _config_error(exc) from None

    def resolved_jwt_secret(self) -> str:
        """The signing secret: PARLEY_JWT_SECRET, else one generated once and kept
        in the data dir (mode 0600) so tokens survive restarts."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
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

    def effective(self) -> list[Effective]:
        """Every setting's variable, value as it would be written (secrets masked) and source."""
        return [
            Effective(
                env_name(name),
                _shown_value(name, getattr(self, name)),
                "environment" if name in self.model_fields_set else "default",
            )
            for name in type(self).model_fields
        ]


class Effective(NamedTuple):
    """One setting as `parley settings` shows it."""

    variable: str
    value: str
    source: str


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def shown_default(field: str) -> str:
    """A field's default as documentation shows it (markdown)."""
    info: FieldInfo = Settings.model_fields[field]
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    value = _shown_value(field, info.get_default(call_default_factory=True))
    return f"`{value}`" if value else "empty"


def _is_secret(field: str) -> bool:
    annotation = Settings.model_fields[field].annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _shown_value(field: str, value: object) -> str:
    """A value as it would be written in the environment, without revealing secrets."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    if field == "database_url":
        return _without_password(str(value))
    return str(value)


def _without_password(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(f":{password}@", f":{MASK}@", 1) if password else url


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, so tests and
    tools can read settings from an environment other than the process's."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._env.items()
            # Upper case only: names are matched as the README writes them,
            # not pydantic-settings' case-insensitive default.
            if name.isupper() and not (self.env_ignore_empty and value == "")
        }


_PLAIN_ERRORS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_parsing": "must be true or false",
    "path_not_file": "must name an existing file",
}


def _field_of(loc: str) -> str:
    """The field an error is located at: by its name, or by its alias (DATABASE_URL)."""
    return next(name for name, info in Settings.model_fields.items() if loc in (name, info.validation_alias))


def _config_error(exc: ValidationError) -> ConfigError:
    """One sentence per bad variable, naming it (and its value, unless secret)."""
    sentences = []
    for error in exc.errors():
        if not error["loc"]:  # a rule between settings: its message names them
            sentences.append(str(error["ctx"]["error"]))
            continue
        field = _field_of(str(error["loc"][0]))
        if error["type"] == "value_error":
            problem = str(error["ctx"]["error"])
        else:
            problem = _PLAIN_ERRORS.get(error["type"], error["msg"].replace("Input should be", "must be", 1))
        got = "" if _is_secret(field) else f", got {error['input']!r}"
        sentences.append(f"{env_name(field)} {problem}{got}")
    return ConfigError("; ".join(sentences))


def environment_variable(name: str) -> str:
    """The value of a variable whose name is chosen at run time, "" when unset.

    An agent names the variable that holds its API key (the key itself is
    never stored), so it cannot be declared above; it is read here so that
    the environment keeps a single reader.
    """
    return os.environ.get(name, "")


def ensure_runtime_dir() -> None:
    """Set XDG_RUNTIME_DIR to /tmp/runtime-<uid> (and create it) when unset.

    pgserver keeps its start-up lock and sockets in platformdirs' runtime
    dir, which platformdirs takes from this variable; its own fallback
    depends on TMPDIR. One fixed directory means every Parley process of
    this user shares the one lock.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)


def share_metrics_through(directory: Path) -> None:
    """Set PROMETHEUS_MULTIPROC_DIR: the directory where prometheus_client's
    multiprocess mode keeps each process's samples (see metrics/endpoint.py)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
