"""The grpc.aio server: services, interceptors, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from parley.admin.v1 import admin_pb2_grpc
from parley.agent.v1 import agent_pb2_grpc
from parley.agent_access.v1 import agent_access_pb2_grpc
from parley.api_key.v1 import api_key_pb2_grpc
from parley.auth.v1 import auth_pb2_grpc
from parley.chat.v1 import chat_pb2_grpc
from parley.client import rpcs
from parley.conversation.v1 import conversation_pb2_grpc
from parley.feedback.v1 import feedback_pb2_grpc
from parley.portability.v1 import portability_pb2_grpc
from parley_server.accounts.handlers import ApiKeyHandlers, AuthHandlers, ServiceAccountHandlers
from parley_server.admin.handlers import AdminHandlers
from parley_server.agents.access_handlers import AgentAccessHandlers
from parley_server.agents.handlers import AgentHandlers
from parley_server.app import App
from parley_server.chat.handlers import ChatHandlers
from parley_server.conversations.handlers import ConversationHandlers
from parley_server.feedback.handlers import FeedbackHandlers
from parley_server.portability.handlers import PortabilityHandlers
from parley_server.transport.interceptors.interceptor import RpcInterceptor
from parley_server.transport.tls import ServerCertificates

log = logging.getLogger(__name__)

# Health follows the database: a probe query every second while it answers
# (every fifth of a second while it does not, to notice its return), and at
# once whenever a statement or the probe connection fails for outage reasons.
PROBE_INTERVAL_SECONDS = 1.0
PROBE_INTERVAL_DOWN_SECONDS = 0.2
PROBE_TIMEOUT_SECONDS = 2.0

# Parley's services, as the protos declare them: reflection and health list them.
SERVICE_NAMES = [service.full_name for service in rpcs.SERVICES]


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Keepalive and size limits: ping idle clients so dead peers are noticed,
    and let clients ping every 20 s (streams behind proxies need that)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_connection_idle_ms", 30 * 60_000),
        # Oversized headers (a huge bogus token) must reach the auth interceptor
        # and get a proper UNAUTHENTICATED, not the transport's bare refusal.
        ("grpc.max_metadata_size", 64 * 1024),
        ("grpc.absolute_max_metadata_size", 64 * 1024),
        ("grpc.so_reuseport", 1),
        # In a burst (a thousand streams opened at once on two busy cores)
        # the last calls can wait tens of seconds for grpc.aio to take them
        # from Core, and Core's defaults cancel those unclaimed after 30 s,
        # and randomly refuse new ones once 1,000 wait. Serving a burst late
        # beats dropping it: callers that would rather fail fast set a deadline,
        # which Core still enforces; beyond 2,000 waiting calls (5,000 at
        # most) Core still sheds load.
        ("grpc.server_max_unrequested_time_in_server", 300),
        ("grpc.server.max_pending_requests", 2000),
        ("grpc.server.max_pending_requests_hard_limit", 5000),
    ]


class GenericHandlersOnly:
    """The server as the generated add_*_to_server functions see it: they add
    each service's methods twice, as a generic handler and as registered
    methods, and this passes on the generic handler alone.

    For every call it accepts, grpc.aio (1.85) waits on one pending request
    per registered method plus one for all generic ones (asyncio.wait over
    them all: a callback added to each and removed again, each checked for
    being a coroutine), so with Parley's 70-odd methods each call cost about
    60 us of event-loop CPU, a tenth of a GetConversation. A bare grpc.aio
    server with 70 methods, h2load on one of them (two runs each): 3,700 and
    4,009 calls/s registered, 4,455 and 5,009 generic. Generic methods are
    looked up in Python, but only on a method's first call (RpcInterceptor
    keeps each method's handler).
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Left out: the same handlers came as a generic handler."""


def _add_reflection_v1(server: grpc.aio.Server, servicer: reflection.aio.ReflectionServicer) -> None:
    """Serve grpc.reflection.v1 too: its messages are wire-identical to v1alpha,
    so the v1alpha servicer answers both (grpcio-reflection only ships v1alpha)."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.reflection.v1.ServerReflection", {"ServerReflectionInfo": handler}
            ),
        )
    )


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    _probe: asyncio.Task[None]
    _app: App
    # None when the port is plaintext.
    certificates: ServerCertificates | None = None

    def reload_certificates(self) -> None:
        """Read the TLS files again for new connections (SIGHUP); nothing to do without TLS."""
        if self.certificates is None:
            log.info("SIGHUP: no TLS certificates to reload (plaintext gRPC)")
            return
        self.certificates.reload()

    def reload_on_sighup(self) -> None:
        """Reload the certificates whenever the process gets SIGHUP, until it stops."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload_certificates)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, end the streams that never end by themselves
        (watches), let in-flight RPCs finish for at most `grace` seconds, stop.
        Returns as soon as nothing is in flight."""
        self._probe.cancel()
        await self.health.enter_graceful_shutdown()
        self._app.chat.close_watches()
        await self.server.stop(grace)


async def start_server(app: App, address: str) -> RunningServer:
    """Build and start the server on address ("host:port"; port 0 picks one)."""
    interceptors: list[grpc.aio.ServerInterceptor] = [
        RpcInterceptor(app.sessions, app.api_keys, metrics=app.settings.metrics_addr is not None)
    ]
    if app.tracing is not None:
        # Imported only when tracing is on; first, so the RPC's span is current in every step after it.
        from parley_server.transport.tracing import rpc_spans

        interceptors.insert(0, rpc_spans(app.tracing))
    server = grpc.aio.server(interceptors=interceptors, options=server_options(app.settings.max_message_bytes))
    services = cast(grpc.aio.Server, GenericHandlersOnly(server))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthHandlers(app.auth), services)
    conversation_pb2_grpc.add_ConversationServiceServicer_to_server(ConversationHandlers(app.conversations), services)
    agent_access_pb2_grpc.add_AgentAccessServiceServicer_to_server(AgentAccessHandlers(app.access), services)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminHandlers(app.admin), services)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentHandlers(app.agents), services)
    chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatHandlers(app.chat), services)
    api_key_pb2_grpc.add_ApiKeyServiceServicer_to_server(ApiKeyHandlers(app.api_keys), services)
    api_key_pb2_grpc.add_ServiceAccountServiceServicer_to_server(ServiceAccountHandlers(app.service_accounts), services)
    feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(FeedbackHandlers(app.feedback), services)
    portability_pb2_grpc.add_PortabilityServiceServicer_to_server(PortabilityHandlers(app.portability), services)

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, services)
    names = [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection_servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection_servicer, services)
    _add_reflection_v1(server, reflection_servicer)

    certificates = ServerCertificates.from_settings(app.settings)
    if certificates is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, certificates.credentials())
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    probe = asyncio.create_task(_probe_database(app, health))
    return RunningServer(server, port, health, probe, app, certificates)


async def _probe_database(app: App, health: HealthServicer) -> None:
    """Keep health in step with the database: SERVING only while it answers."""
    reachability = app.database.reachability
    changed = asyncio.Event()
    reachability.listen(lambda _up: changed.set())
    last: bool | None = None
    while True:
        if reachability.up != last:
            last = reachability.up
            status = health_pb2.HealthCheckResponse.SERVING if last else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ["", *SERVICE_NAMES]:
                await health.set(name, status)
        interval = PROBE_INTERVAL_SECONDS if last else PROBE_INTERVAL_DOWN_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=interval)
        if changed.is_set():
            changed.clear()
            continue  # a reported outage: publish it before probing again
        try:
            await app.database.probe(PROBE_TIMEOUT_SECONDS)
        except Exception:  # not an outage (e.g. refused credentials): still not serving
            log.exception("database probe failed")
            reachability.report(False)


def listening(address: str, running: RunningServer) -> str:
    """Where the server listens, for the log: host, bound port, and how (TLS, mutual TLS)."""
    where = address.rsplit(":", 1)[0] + f":{running.port}"
    if running.certificates is None:
        return f"{where} (plaintext)"
    return f"{where} ({'mutual TLS' if running.certificates.mutual else 'TLS'})"


async def serve_until_signalled(app: App, address: str) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully."""
    running = await start_server(app, address)
    running.reload_on_sighup()  # before the line that says it serves: from then on SIGHUP reloads
    log.info("Parley gRPC listening on %s", listening(address, running))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %ss)", app.settings.shutdown_grace_seconds)
    await running.stop(app.settings.shutdown_grace_seconds)
