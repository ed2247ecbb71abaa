"""The composition root: builds every domain service from Settings, once.

Everything that holds state (database pool, session cache, email sender) is
created here and handed to whoever needs it, so tests and the CLI get exactly
the same wiring as `parley serve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher

from parley_server.accounts.api_keys import RATE_LIMIT_FLUSH_SECONDS, RATE_LIMIT_WINDOW, ApiKeyService
from parley_server.accounts.auth_service import AuthLimits, AuthService
from parley_server.accounts.email import EmailSender, EmailTemplates, OutboxSender, SmtpSender
from parley_server.accounts.passwords import Passwords
from parley_server.accounts.service_accounts import ServiceAccountService
from parley_server.accounts.session_service import SessionService
from parley_server.accounts.tokens import AccessTokens
from parley_server.admin.replicas import Heartbeat
from parley_server.admin.service import AdminService
from parley_server.agents.access_service import AgentAccessService
from parley_server.agents.registry import AgentRegistry
from parley_server.agents.service import AgentService
from parley_server.chat.service import ChatService
from parley_server.common.activity import Activity
from parley_server.common.housekeeping import Housekeeping
from parley_server.common.pagination import Paginator
from parley_server.common.rate_limiter import BufferedLimit, Limit, RateLimiter
from parley_server.conversations.service import ConversationService
from parley_server.db.database import Database, asyncpg_dsn
from parley_server.events.bus import EventBus
from parley_server.feedback.service import FeedbackService
from parley_server.metrics import endpoint
from parley_server.portability.service import PortabilityService
from parley_server.settings import Settings

if TYPE_CHECKING:  # imported only when tracing is on: see build_app
    from parley_server.common.tracing import Tracing


@dataclass
class App:
    settings: Settings
    database: Database
    sessions: SessionService
    email: EmailSender
    auth: AuthService
    api_keys: ApiKeyService
    service_accounts: ServiceAccountService
    registry: AgentRegistry
    agents: AgentService
    access: AgentAccessService
    conversations: ConversationService
    admin: AdminService
    bus: EventBus
    chat: ChatService
    feedback: FeedbackService
    portability: PortabilityService
    housekeeping: Housekeeping
    heartbeat: Heartbeat
    # None when tracing is off (OTEL_EXPORTER_OTLP_ENDPOINT unset).
    tracing: Tracing | None = None
    started: bool = field(default=False, init=False)
    metrics: endpoint.Endpoint | None = field(default=None, init=False)

    async def start(self) -> None:
        """Start the background parts a serving process needs (events, generations,
        housekeeping, the heartbeat that lists it among the replicas, and the
        metrics endpoint, unless a `--workers` parent serves it for all)."""
        if self.settings.metrics_addr is not None and not endpoint.shared_between_processes():
            self.metrics = await endpoint.serve(self.settings.metrics_addr)  # first: a taken port stops nothing started
        await self.bus.start()
        await self.chat.start()
        self.housekeeping.start()
        await self.heartbeat.start()
        self.started = True

    async def aclose(self) -> None:
        if self.started:
            await self.housekeeping.stop()
            await self.chat.stop(self.settings.shutdown_grace_seconds)
            await self.heartbeat.stop()
            await self.bus.stop()
        await self.api_keys.aclose()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.registry.aclose()
        await self.email.aclose()
        await self.database.close()
        if self.tracing is not None:
            self.tracing.close()


def build_app(settings: Settings, database_url: str, *, tracing: Tracing | None = None) -> App:
    """Wire the services for one process; database_url is the resolved URL.

    Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set, or when `tracing`
    is given (tests export to memory); off, the OpenTelemetry SDK is never imported.
    """
    if tracing is None and settings.otel_exporter_otlp_endpoint:
        from parley_server.common.tracing import Tracing

        tracing = Tracing.from_settings(settings)
    database = Database(
        database_url,
        schema=settings.db_schema,
        pool_size=settings.db_pool_size,
        counted=settings.metrics_addr is not None,
    )
    jwt_secret = settings.resolved_jwt_secret()
    paginator = Paginator(jwt_secret)
    sessions = SessionService(
        database,
        AccessTokens(
            jwt_secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        ),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        cache_seconds=settings.session_cache_seconds,
    )
    email: EmailSender = SmtpSender(settings) if settings.email_backend == "smtp" else OutboxSender(database)
    login_window = timedelta(seconds=settings.login_failure_window_seconds)
    limits = AuthLimits(
        login_per_email=Limit("login-email", settings.login_max_failures_per_email, login_window),
        login_per_client=Limit("login-client", settings.login_max_failures_per_client, login_window),
        verification_emails=Limit("verify-email", settings.account_emails_per_hour, timedelta(hours=1)),
        reset_emails=Limit("reset-email", settings.account_emails_per_hour, timedelta(hours=1)),
    )
    auth = AuthService(
        database,
        sessions,
        Passwords(PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)),
        email,
        EmailTemplates(settings.public_url),
        RateLimiter(),
        limits,
        waitlist_enabled=settings.waitlist,
    )
    api_keys = ApiKeyService(
        database,
        paginator,
        BufferedLimit(
            database,
            RateLimiter(),
            Limit("api-key", settings.api_key_calls_per_minute, RATE_LIMIT_WINDOW),
            flush_seconds=RATE_LIMIT_FLUSH_SECONDS,
        ),
        cache_seconds=settings.session_cache_seconds,
    )
    service_accounts = ServiceAccountService(database, paginator, api_keys)
    registry = AgentRegistry(
        echo_delay_seconds=settings.echo_delay_ms / 1000,
        provider_timeout_seconds=settings.provider_timeout_seconds,
        tracer=tracing.tracer if tracing else None,
    )
    agents = AgentService(database, paginator, registry)
    access = AgentAccessService(database, paginator)
    bus = EventBus(asyncpg_dsn(database_url), schema=settings.db_schema)
    conversations = ConversationService(database, paginator, access, registry, publish=bus.publish)
    activity = Activity()
    heartbeat = Heartbeat(database, activity, address=settings.grpc_addr, interval=settings.heartbeat_interval_seconds)
    admin = AdminService(database, paginator, sessions, auth, conversations, activity=activity, heartbeat=heartbeat)
    chat = ChatService(
        database,
        bus,
        registry,
        conversations,
        activity=activity,
        generation_timeout_seconds=settings.generation_timeout_seconds,
        persist_interval=settings.persist_interval_ms / 1000,
        frame_interval=settings.stream_frame_ms / 1000,
        sweep_interval=settings.sweep_interval_seconds,
    )
    housekeeping = Housekeeping(
        database, rate_limit_horizon=limits.longest_window, interval=settings.housekeeping_interval_seconds
    )
    return App(
        settings,
        database,
        sessions,
        email,
        auth,
        api_keys,
        service_accounts,
        registry,
        agents,
        access,
        conversations,
        admin,
        bus,
        chat,
        FeedbackService(database, paginator),
        PortabilityService(database, access, conversations),
        housekeeping,
        heartbeat,
        tracing,
    )
