"""Parley keeps to its schema (PARLEY_DB_SCHEMA): beside another application's
tables, beside another Parley, and when it takes over an install that kept
its tables in `public`.

Each test owns a PostgreSQL cluster (tests/helpers/pg_cluster.py): a database
holding another application's tables, whose pg_dump is compared byte for
byte, is more than the suite's shared database can be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc
from alembic import command
from sqlalchemy import func, select, text

from parley.chat.v1 import chat_pb2
from parley_server.app import App, build_app
from parley_server.db.database import Database, asyncpg_dsn
from parley_server.db.locks import HOUSEKEEPING_LOCK_KEY, scoped
from parley_server.db.migrate import alembic_config, migrate
from parley_server.transport.server import start_server
from tests.helpers.accounts import PASSWORD, Account
from tests.helpers.chat import collect, kinds, text_of
from tests.helpers.conversations import new_conversation
from tests.helpers.in_process import settings_for_tests
from tests.helpers.pg_cluster import PgCluster
from tests.helpers.stubs import Stubs

# Another application's tables, named like Parley's but shaped otherwise, with
# rows, its own Alembic version table, and an enum named like one of Parley's.
NEIGHBOUR = """
CREATE TYPE message_state AS ENUM ('draft', 'sent');
CREATE TABLE users (id serial PRIMARY KEY, login text UNIQUE NOT NULL, joined date NOT NULL);
CREATE TABLE conversations (id bigserial PRIMARY KEY, started_by int REFERENCES users, topic text);
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations,
    body text NOT NULL,
    state message_state NOT NULL DEFAULT 'sent'
);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('3f2a9c1d7e44');
INSERT INTO users (login, joined) VALUES ('ada', '2020-01-02'), ('grace', '2021-03-04');
INSERT INTO conversations (started_by, topic) VALUES (1, 'engines'), (2, 'compilers');
INSERT INTO messages (conversation_id, body, state) VALUES (1, 'hello', 'sent'), (2, 'draft reply', 'draft');
"""
WORDS = "the quick brown fox"
LEGACY_REVISION = "0009_feedback"
PARLEY_TYPES = "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = :schema"


@asynccontextmanager
async def serving(tmp_path: Path, url: str, schema: str) -> AsyncIterator[Stubs]:
    """`parley serve` in this process: migrated, background work started, on a port of its own."""
    app = build_app(settings_for_tests(tmp_path, url, db_schema=schema), url)
    try:
        await migrate(app.database)
        await app.start()
        running = await start_server(app, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield Stubs(channel, app)
        finally:
            await running.stop(0)
    finally:
        await app.aclose()


async def chat(stubs: Stubs, account: Account) -> str:
    """One exchange in a new conversation; the answer's text."""
    conversation = await new_conversation(stubs, account)
    events = await collect(
        stubs.chat.SendMessage(
            chat_pb2.SendMessageRequest(conversation_id=conversation.id, content=WORDS), metadata=account.md
        )
    )
    assert kinds(events)[-1] == "completed"
    return text_of(events)


async def scalars(app: App, statement: str, **params: object) -> list[object]:
    async with app.database.transaction() as db:
        return list((await db.execute(text(statement), params)).scalars())


async def run_sql(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def test_a_neighbouring_apps_tables_stay_byte_for_byte_the_same(tmp_path: Path, cluster: PgCluster) -> None:
    await run_sql(cluster.url, NEIGHBOUR)
    before = cluster.dump("--exclude-schema=parley")

    async with serving(tmp_path, cluster.url, "parley") as stubs:
        alice = await stubs.active_account("alice@example.com")
        assert await chat(stubs, alice)
        assert await stubs.app.housekeeping.run_once() is not None
        assert await scalars(stubs.app, "SELECT email FROM users") == ["alice@example.com"]
        assert await scalars(stubs.app, "SELECT current_schemas(true)") == [["pg_catalog", "parley"]]

    assert cluster.dump("--exclude-schema=parley") == before
    assert "CREATE TABLE parley.users" in cluster.dump("--schema=parley")


async def test_an_install_in_public_moves_into_the_schema_with_its_rows(tmp_path: Path, cluster: PgCluster) -> None:
    # What a Parley from before the schema left: everything in public, at its last revision.
    legacy = Database(cluster.url, schema="public")
    async with legacy.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync, "public"), LEGACY_REVISION))
    await legacy.close()
    old = build_app(settings_for_tests(tmp_path, cluster.url, db_schema="public"), cluster.url)
    await old.auth.create_admin("root@example.com", PASSWORD)
    agents = await scalars(old, "SELECT slug FROM agents ORDER BY slug")
    await old.aclose()

    async with serving(tmp_path, cluster.url, "parley") as stubs:
        root = await stubs.login("root@example.com")
        assert await chat(stubs, root)
        assert await scalars(stubs.app, "SELECT slug FROM agents ORDER BY slug") == agents
        assert await scalars(stubs.app, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []
        assert await scalars(stubs.app, PARLEY_TYPES + " AND t.typtype = 'e'", schema="public") == []
        assert await scalars(stubs.app, "SELECT proconfig FROM pg_proc WHERE proname = 'stats_forget_days'") == [
            ["search_path=parley"]
        ]
        head = await scalars(stubs.app, "SELECT version_num FROM parley.alembic_version")
    # The next start finds the install where it now is, at the newest revision.
    async with serving(tmp_path, cluster.url, "parley") as stubs:
        assert await scalars(stubs.app, "SELECT version_num FROM alembic_version") == head
        await stubs.login("root@example.com")


async def test_two_installs_in_two_schemas_share_neither_rows_nor_events_nor_locks(
    tmp_path: Path, cluster: PgCluster
) -> None:
    heard: list[str] = []
    spy = await asyncpg.connect(asyncpg_dsn(cluster.url))
    try:
        async with (
            serving(tmp_path / "alpha", cluster.url, "alpha") as alpha,
            serving(tmp_path / "beta", cluster.url, "beta") as beta,
        ):
            await spy.add_listener(alpha.app.bus.channel, lambda *args: heard.append(args[2]))
            # The same address registers in each: neither sees the other's user.
            in_beta = await beta.active_account("same@example.com")
            in_alpha = await alpha.active_account("same@example.com")
            assert in_alpha.user.id != in_beta.user.id
            assert await chat(beta, in_beta)
            assert await scalars(alpha.app, "SELECT count(*) FROM messages") == [0]
            assert heard == [], "beta's events reached alpha's channel"
            assert await chat(alpha, in_alpha)
            assert await scalars(beta.app, "SELECT count(*) FROM messages") == [2]
            async with alpha.app.database.transaction() as db:  # alpha's housekeeping round, still running
                await db.execute(select(func.pg_advisory_xact_lock(scoped(HOUSEKEEPING_LOCK_KEY))))
                assert await alpha.app.housekeeping.run_once() is None
                assert await beta.app.housekeeping.run_once() is not None, "beta skipped its round for alpha's"
            async with asyncio.timeout(10):
                while not heard:  # alpha's own events do use its channel
                    await asyncio.sleep(0.05)
    finally:
        await spy.close()
