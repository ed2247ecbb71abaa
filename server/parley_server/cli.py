"""The `parley` command: serve, migrate, create-admin, invite, outbox, settings, chat.

Configuration comes from environment variables (declared in settings.py,
explained in the README, printed by `parley settings`); the flags here only
choose what to do. With no DATABASE_URL every subcommand uses the embedded
PostgreSQL in PARLEY_DATA_DIR, starting it if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import select

from parley.client import terminal
from parley_server import __version__
from parley_server.app import App, build_app
from parley_server.bridge import web
from parley_server.bridge.envoy import serve_with_envoy
from parley_server.bridge.workers import serve_in_workers
from parley_server.common import logs
from parley_server.common.errors import DomainError
from parley_server.db.database import Database
from parley_server.db.embedded import start_embedded_postgres
from parley_server.db.migrate import migrate
from parley_server.db.models import OutboxEmail, Scope
from parley_server.settings import ConfigError, Settings
from parley_server.transport.server import serve_until_signalled

log = logging.getLogger("parley")

# Allocations (net of frees) between two collections of the youngest
# generation while serving; the older generations keep Python's defaults
# (each collected after 10 of the younger). A serving process allocates
# objects by the hundred thousand a second (each call, delta and statement
# result), nearly all freed by reference counting. At Python's default of
# 700 the collector ran 40-50 times a second in a burst of 1,000 chat
# streams x 200 words, for 1.4 ms a run on average (gc.callbacks): 4.3 s
# over three rounds, against 0.3 s at 50,000, when a run holds back at most
# a few MB of unreachable cycles.
YOUNG_COLLECTION_THRESHOLD = 50_000


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's URL (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.data_dir)


def run(main: Coroutine[Any, Any, int], settings: Settings) -> int:
    """Run a coroutine on uvloop when it is installed (PARLEY_UVLOOP=false opts out)."""
    if settings.uvloop:
        try:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
        except ImportError:
            pass
    return asyncio.run(main)


async def _with_app(
    settings: Settings, action: Callable[[App], Awaitable[int]], *, wait_for_database: bool = False
) -> int:
    app = build_app(settings, resolve_database_url(settings))
    try:
        if wait_for_database:
            await app.database.wait_until_reachable()
        await migrate(app.database)
        return await action(app)
    finally:
        await app.aclose()


def _prepare_database(settings: Settings) -> str:
    """Resolve and migrate the database once, before workers fork; returns its URL."""
    url = resolve_database_url(settings)

    async def migrate_only() -> None:
        database = Database(url, schema=settings.db_schema)
        try:
            await database.wait_until_reachable()
            await migrate(database)
        finally:
            await database.close()

    asyncio.run(migrate_only())
    return url


async def _serve(app: App, address: str, with_envoy: bool) -> int:
    await app.start()
    # What exists now (modules, mappers, descriptors, the app) lives as long
    # as the process: out of the collector's generations, it is not traversed
    # again by every full collection while serving.
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
    if with_envoy:
        return await serve_with_envoy(app, address)
    await serve_until_signalled(app, address)
    return 0


async def _migrate(app: App) -> int:
    print("database schema is up to date")
    return 0


async def _create_admin(app: App, email: str) -> int:
    given = app.settings.admin_password
    password = given.get_secret_value() if given else _prompt_password()
    user = await app.auth.create_admin(email, password)
    print(f"administrator {user.email} ({user.id}) is ready")
    return 0


# The scopes of `create-service-account`'s key unless --scope names others.
SERVICE_ACCOUNT_DEFAULT_SCOPES = ["read", "write", "chat"]


async def _create_service_account(app: App, name: str, scopes: list[str], certificate_identity: str) -> int:
    """The secret alone on stdout (KEY=$(parley create-service-account ...)), the rest on stderr."""
    account = await app.service_accounts.create(name)
    chosen = [Scope(scope.replace("-", "_")) for scope in scopes or SERVICE_ACCOUNT_DEFAULT_SCOPES]
    key, secret = await app.service_accounts.create_key(str(account.id), name, chosen, None, certificate_identity)
    listed = ", ".join(scope.value for scope in key.scopes)
    print(f"service account {account.display_name!r} ({account.id}), key {key.prefix}... ({listed}):", file=sys.stderr)
    print(secret)
    return 0


def _prompt_password() -> str:
    password = getpass.getpass("Password for the administrator: ")
    if password != getpass.getpass("Repeat the password: "):
        raise SystemExit("the passwords differ")
    return password


def _print_settings(settings: Settings) -> int:
    """Each variable as it would be set, and where its value came from."""
    rows = [(f"{row.variable}={row.value}", row.source) for row in settings.effective()]
    width = max(len(assignment) for assignment, _ in rows)
    for assignment, source in rows:
        print(f"{assignment:<{width}}  # {source}")
    return 0


async def _invite(app: App, email: str | None) -> int:
    code = await app.auth.create_invite(email)
    print(code)
    return 0


async def _outbox(app: App, recipient: str | None, limit: int) -> int:
    query = select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(limit)
    if recipient:
        query = query.where(OutboxEmail.recipient == recipient.strip().lower())
    async with app.database.transaction() as db:
        emails = list((await db.execute(query)).scalars())
    if not emails:
        print("the outbox is empty")
    for email in emails:
        print(f"--- #{email.id} {email.create_time:%Y-%m-%d %H:%M:%S} to {email.recipient}")
        print(f"Subject: {email.subject}\n\n{email.body}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley: gRPC backend for AI-agent chat. Settings come from environment "
        "variables (DATABASE_URL, PARLEY_GRPC_ADDR, PARLEY_DATA_DIR, ...; `parley settings` lists them all, "
        "the README explains them).",
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="migrate the database and serve gRPC, plus the web page and gRPC-web through Envoy, "
        "until Ctrl-C / SIGTERM",
    )
    serve.add_argument("--addr", help="listen address host:port (default: PARLEY_GRPC_ADDR or 127.0.0.1:50051)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="run N server processes on one port (SO_REUSEPORT), behind one Envoy; "
        "'auto' = one per CPU core this process may use (default 1)",
    )
    serve.add_argument(
        "--no-envoy",
        action="store_true",
        help="serve gRPC only: no Envoy gRPC-web bridge and no web page (PARLEY_ENVOY_ADDR)",
    )
    sub.add_parser("migrate", help="apply database migrations and exit")
    admin = sub.add_parser(
        "create-admin",
        help="create (or promote) an administrator; password from PARLEY_ADMIN_PASSWORD or a prompt",
    )
    admin.add_argument("email")
    service_account = sub.add_parser(
        "create-service-account",
        help="create a service account with one API key and print the key (shown only once)",
    )
    service_account.add_argument("name", help="what the account is for, e.g. 'billing backend'")
    service_account.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=[scope.value.replace("_", "-") for scope in Scope if scope is not Scope.ADMIN],
        help="what the key may do; repeat for more (default: read, write and chat)",
    )
    service_account.add_argument(
        "--certificate-identity",
        default="",
        metavar="NAME",
        help="bind the key to this client certificate name (SAN or subject CN): under mutual TLS the "
        "certificate alone authenticates as the key, and the key's secret works only with it",
    )
    invite = sub.add_parser("invite", help="print a single-use invite code that skips the waitlist")
    invite.add_argument("email", nargs="?", help="bind the code to this email and email it there")
    sub.add_parser(
        "settings",
        help="print every setting's effective value (secrets masked) and whether it came from the environment",
    )
    chat = sub.add_parser("chat", help="chat with an agent from the terminal (a gRPC client of a running server)")
    terminal.add_arguments(chat)
    outbox = sub.add_parser("outbox", help="print the newest emails of the development outbox")
    outbox.add_argument("--to", dest="recipient", help="only emails to this address")
    outbox.add_argument("-n", "--limit", type=int, default=5, help="how many emails (default 5)")
    return parser


def _worker_count(value: str) -> int:
    """`--workers`: a positive number, or `auto` for one per usable core.

    Usable cores, not `os.cpu_count()`: a container or `taskset` may allow
    this process fewer cores than the machine has, and a worker per core it
    cannot run on only adds contention.
    """
    if value == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {value!r}")
    return count


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "chat":  # a client: needs no database and no server settings
        return terminal.run(args)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"parley: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "settings":  # reads nothing but the environment
        return _print_settings(settings)
    if args.command == "serve" and args.addr:
        # For everything that asks where this process listens: Envoy's upstream, the replicas table.
        settings = settings.model_copy(update={"grpc_addr": args.addr})
    logs.configure(settings.log_level, traced=bool(settings.otel_exporter_otlp_endpoint))
    # pgserver narrates every pg_ctl call at INFO; only its problems matter here.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    actions: dict[str, Callable[[App], Awaitable[int]]] = {
        "serve": lambda app: _serve(app, settings.grpc_addr, not args.no_envoy),
        "migrate": _migrate,
        "create-admin": lambda app: _create_admin(app, args.email),
        "invite": lambda app: _invite(app, args.email),
        "create-service-account": lambda app: _create_service_account(
            app, args.name, args.scopes, args.certificate_identity
        ),
        "outbox": lambda app: _outbox(app, args.recipient, args.limit),
    }
    try:
        if args.command == "serve" and not args.no_envoy:
            web.check_page(web.PAGE_DIR)  # before anything starts
        if args.command == "serve" and args.workers > 1:
            address = settings.grpc_addr
            return serve_in_workers(
                settings,
                address,
                args.workers,
                prepare=_prepare_database,
                run_worker=lambda shared: run(
                    _with_app(shared, lambda app: _serve(app, address, False), wait_for_database=True), shared
                ),
                with_envoy=not args.no_envoy,
            )
        # A server waits for its database (it may start first, or be restarting);
        # one-shot commands fail at once instead.
        return run(_with_app(settings, actions[args.command], wait_for_database=args.command == "serve"), settings)
    except DomainError as exc:
        print(f"parley: {exc.message}", file=sys.stderr)
        return 1
    except (ConfigError, OSError) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
