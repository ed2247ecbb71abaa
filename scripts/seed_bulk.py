#!/usr/bin/env python3
"""Fill a Parley database with a large, realistic-looking data set, fast.

Meant for benchmarks (scripts/bench_admin.py) and for trying the admin
statistics on real volumes. Default sizes: 10,000 users, 100,000
conversations, 1,000,000 messages spread over the last 90 days, plus the
matching `usage_daily` rollup rows, so GetStats and message counts agree.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/parley_bench python scripts/seed_bulk.py
    python scripts/seed_bulk.py --users 200 --conversations 2000 --messages 20000   # CI-sized

Without DATABASE_URL it seeds the embedded PostgreSQL of PARLEY_DATA_DIR. The
schema is migrated first. Rows are streamed with binary COPY
(asyncpg.copy_records_to_table) as they are generated, so memory stays flat,
into tables whose keys and indexes are rebuilt once at the end, all in one
transaction. That transaction locks the tables it loads: seed a database
nobody is using, and only once (the seeded emails are fixed).

Every seeded account has the password SEED_PASSWORD. The first user,
HEAVY_USER_EMAIL, owns a large share of the conversations so that deep
pagination can be measured on one account.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
from argon2 import PasswordHasher

from parley_server.cli import resolve_database_url
from parley_server.db.database import Database, asyncpg_dsn, schema_settings
from parley_server.db.migrate import migrate
from parley_server.settings import Settings

SEED_PASSWORD = "seed-password-123"
HEAVY_USER_EMAIL = "seed000000@seed.parley.test"
# Share of all conversations owned by the heavy user.
HEAVY_USER_SHARE = 0.02
EMPTY_CONVERSATION_SHARE = 0.1
# Loaded with keys and indexes rebuilt afterwards (see keys_and_indexes_deferred).
BULK_TABLES = ("conversations", "messages", "usage_daily")
# (state, email_verified, weight): most accounts are active.
STATES = [
    ("active", True, 90),
    ("pending_verification", False, 5),
    ("waitlisted", False, 3),
    ("disabled", True, 2),
]
PHRASES = [
    "how do I reverse a linked list in python",
    "write a haiku about autumn rain",
    "explain the difference between tcp and udp",
    "summarise this article about climate policy",
    "what is a good name for a coffee shop",
    "help me draft an email to my landlord",
    "review this sql query for performance problems",
    "translate good morning into japanese",
    "why is the sky blue",
    "give me three ideas for a birthday party",
    "sure, here is a short answer with an example",
    "that depends on the context; here are the trade-offs",
    "here is a revised version with clearer wording",
    "the main bug is an off-by-one error in the loop",
]


@dataclass(frozen=True)
class Sizes:
    users: int
    conversations: int
    messages: int
    agents: int
    days: int


@dataclass
class ConversationPlan:
    """One conversation to seed; times are epoch seconds (cheaper than datetimes by the million)."""

    id: str
    user_id: str
    agent_id: str
    create_time: float
    message_times: list[float]


USER_COLUMNS = [
    "id",
    "email",
    "password_hash",
    "display_name",
    "role",
    "state",
    "premium",
    "email_verified",
    "create_time",
    "last_login_time",
]
CONVERSATION_COLUMNS = [
    "id",
    "user_id",
    "agent_id",
    "title",
    "archived",
    "pinned",
    "message_count",
    "create_time",
    "update_time",
    "last_message_time",
]
MESSAGE_COLUMNS = [
    "id",
    "conversation_id",
    "role",
    "content",
    "state",
    "failure_reason",
    "prompt_tokens",
    "completion_tokens",
    "create_time",
    "update_time",
    "parent_id",
]
# Each seeded conversation is one path: its last message is the active leaf.
ACTIVE_LEAVES = (
    "UPDATE conversations AS c SET active_message_id = last.id FROM ("
    "SELECT DISTINCT ON (conversation_id) conversation_id, id FROM messages ORDER BY conversation_id, seq DESC"
    ") AS last WHERE c.id = last.conversation_id"
)
USAGE_COLUMNS = ["user_id", "agent_id", "day", "message_count", "prompt_tokens", "completion_tokens"]
EPOCH_DAY = date(1970, 1, 1)
# (user id, agent id, days since the epoch)
UsageKey = tuple[str, str, int]


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def new_id(rng: random.Random) -> str:
    """A UUID as 32 hex digits (asyncpg takes them as is): reproducible from
    the seed, many times cheaper than uuid4(), and ids hash fast as dict keys."""
    return f"{rng.getrandbits(128):032x}"


def plan_users(
    rng: random.Random, sizes: Sizes, now: float, password_hash: str
) -> tuple[list[tuple[object, ...]], list[tuple[str, float]]]:
    """User rows created uniformly over the period, and (id, create_time) of the active ones.

    User 0 (HEAVY_USER_EMAIL) is always active and the oldest account.
    """
    weighted_states = [state for state in STATES for _ in range(state[2])]
    period = sizes.days * 86400
    rows: list[tuple[object, ...]] = []
    active: list[tuple[str, float]] = []
    for i in range(sizes.users):
        state, verified, _ = STATES[0] if i == 0 else rng.choice(weighted_states)
        created = now - (period if i == 0 else rng.uniform(0, period))
        user_id = new_id(rng)
        rows.append(
            (
                user_id,
                f"seed{i:06d}@seed.parley.test",
                password_hash,
                f"Seed user {i}",
                "user",
                state,
                rng.random() < 0.1,
                verified,
                at(created),
                None,
            )
        )
        if state == "active":
            active.append((user_id, created))
    return rows, active


def plan_conversations(
    rng: random.Random,
    sizes: Sizes,
    now: float,
    active: list[tuple[str, float]],
    agents: Sequence[str],
) -> list[ConversationPlan]:
    """Conversations of active users (the heavy user owns HEAVY_USER_SHARE of them),
    popular agents first (Zipf-like), messages spread over up to a week after creation."""
    heavy = int(sizes.conversations * HEAVY_USER_SHARE)
    owners = [active[0]] * heavy + rng.choices(active[1:] or active, k=sizes.conversations - heavy)
    picked_agents = rng.choices(agents, weights=[1 / (rank + 1) for rank in range(len(agents))], k=len(owners))
    non_empty = [i for i in range(len(owners)) if rng.random() >= EMPTY_CONVERSATION_SHARE]
    counts = Counter(rng.choices(non_empty, k=sizes.messages)) if non_empty else Counter()
    plans = []
    random_float = rng.random
    for i, ((user_id, user_created), agent_id) in enumerate(zip(owners, picked_agents, strict=True)):
        created = user_created + (now - user_created) * random_float()
        span = min(now - created, 7 * 86400)
        times = sorted([created + span * random_float() for _ in range(counts[i])])
        plans.append(ConversationPlan(new_id(rng), user_id, agent_id, created, times))
    return plans


def conversation_rows(rng: random.Random, plans: list[ConversationPlan]) -> Iterator[tuple[object, ...]]:
    for n, plan in enumerate(plans):
        last = at(plan.message_times[-1]) if plan.message_times else None
        created = at(plan.create_time)
        yield (
            plan.id,
            plan.user_id,
            plan.agent_id,
            f"Conversation {n}",
            rng.random() < 0.05,
            rng.random() < 0.02,
            len(plan.message_times),
            created,
            last or created,
            last,
        )


def message_rows(
    rng: random.Random, plans: list[ConversationPlan], usage: defaultdict[UsageKey, list[int]]
) -> Iterator[tuple[object, ...]]:
    """Alternating user/assistant messages, each the parent of the next. Each assistant message counts one
    message and its tokens for (user, agent, its UTC day), as Chat records
    usage when a generation completes.

    Written for speed (it runs a million times): bound methods hoisted, no randint.
    """
    random_float, phrases = rng.random, PHRASES
    for plan in plans:
        parent = None
        for n, epoch in enumerate(plan.message_times):
            created = at(epoch)
            content = phrases[int(random_float() * len(phrases))]
            message_id = new_id(rng)
            if n % 2 == 0:
                yield (message_id, plan.id, "user", content, "complete", "", 0, 0, created, created, parent)
            else:
                prompt, completion = 20 + int(random_float() * 780), 20 + int(random_float() * 580)
                counters = usage[(plan.user_id, plan.agent_id, int(epoch // 86400))]
                counters[0] += 1
                counters[1] += prompt
                counters[2] += completion
                yield (
                    message_id,
                    plan.id,
                    "assistant",
                    content,
                    "complete",
                    "",
                    prompt,
                    completion,
                    created,
                    created,
                    parent,
                )
            parent = message_id


def usage_rows(usage: defaultdict[UsageKey, list[int]]) -> Iterator[tuple[object, ...]]:
    for (user_id, agent_id, day), (messages, prompt, completion) in usage.items():
        yield (user_id, agent_id, EPOCH_DAY + timedelta(days=day), messages, prompt, completion)


async def seed_agents(conn: asyncpg.Connection, rng: random.Random, wanted: int) -> list[str]:
    """Ids of the live agents, the catalogue topped up with echo agents to `wanted`."""
    existing = [row["id"].hex for row in await conn.fetch("SELECT id FROM agents WHERE delete_time IS NULL")]
    added = [new_id(rng) for _ in range(len(existing), wanted)]
    await conn.executemany(
        """INSERT INTO agents (id, slug, name, description, visibility, enabled, provider, model, base_url,
               api_key_env, system_prompt, temperature, max_output_tokens, title_generation, version)
           VALUES ($1, $2, $3, '', 'public', true, 'echo', 'echo', '', '', '', 0.7, 1024, false, 1)""",
        [(agent_id, f"seed-{agent_id[:12]}", f"Seed agent {agent_id[:6]}") for agent_id in added],
    )
    return existing + added


@asynccontextmanager
async def keys_and_indexes_deferred(conn: asyncpg.Connection, tables: Sequence[str]) -> AsyncIterator[None]:
    """Load tables with no key, foreign key or index to maintain, then rebuild them all.

    What pg_restore does: building an index once over all rows, and checking
    a foreign key with one join, is many times faster than doing both row by
    row (random UUID keys and the GIN full-text indexes above all). The
    definitions are read from the catalogue and re-run verbatim, so the schema
    ends exactly as the migrations left it. Everything happens inside the
    caller's transaction: a failure leaves the schema and data untouched.
    """
    constraints = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tab, c.conname AS name, c.contype::text AS kind,
                  pg_get_constraintdef(c.oid) AS definition
           FROM pg_constraint c
           WHERE c.contype IN ('p', 'u', 'f')
             AND (c.conrelid = ANY($1::regclass[]) OR (c.contype = 'f' AND c.confrelid = ANY($1::regclass[])))""",
        list(tables),
    )
    indexes = await conn.fetch(
        """SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = ANY($1::regclass[])
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)""",
        list(tables),
    )
    foreign = [c for c in constraints if c["kind"] == "f"]
    keys = [c for c in constraints if c["kind"] != "f"]
    for c in [*foreign, *keys]:
        await conn.execute(f'ALTER TABLE {c["tab"]} DROP CONSTRAINT "{c["name"]}"')
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')
    yield
    await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
    for c in [*keys, *foreign]:
        await conn.execute(f'ALTER TABLE {c["tab"]} ADD CONSTRAINT "{c["name"]}" {c["definition"]}')
    for index in indexes:
        await conn.execute(index["definition"])


async def copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: Iterable[tuple[object, ...]]) -> int:
    """One binary COPY streaming rows as they are generated; returns how many.

    Streaming keeps memory flat and lets PostgreSQL work on one core while
    Python generates the next rows on the other.
    """
    written = 0

    async def counted() -> AsyncIterator[tuple[object, ...]]:
        nonlocal written
        for row in rows:
            written += 1
            yield row

    await conn.copy_records_to_table(table, records=counted(), columns=columns)
    return written


async def seed(url: str, schema: str, sizes: Sizes, seed_value: int) -> None:
    started = time.perf_counter()
    database = Database(url, schema=schema)
    try:
        await migrate(database)
    finally:
        await database.close()
    rng = random.Random(seed_value)
    now = time.time()
    # Cheap Argon2 parameters: verification reads them from the hash, and
    # logging in as a seeded account should not dominate a benchmark.
    password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(SEED_PASSWORD)
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings=schema_settings(schema))
    timings: list[str] = []

    def lap(what: str, count: int) -> None:
        timings.append(f"{what} {count:,} ({time.perf_counter() - started:.1f} s)")

    try:
        async with conn.transaction():
            if await conn.fetchval("SELECT 1 FROM users WHERE email = $1", HEAVY_USER_EMAIL):
                raise SystemExit("this database is seeded already; seed an empty one")
            agents = await seed_agents(conn, rng, sizes.agents)
            users, active = plan_users(rng, sizes, now, password_hash)
            if not active:
                raise SystemExit("no active user to own conversations; seed more --users")
            lap("users", await copy(conn, "users", USER_COLUMNS, users))
            plans = plan_conversations(rng, sizes, now, active, agents)
            lap("conversations planned", len(plans))
            # (user, agent, day) -> [messages, prompt tokens, completion tokens]
            usage: defaultdict[UsageKey, list[int]] = defaultdict(lambda: [0, 0, 0])
            async with keys_and_indexes_deferred(conn, BULK_TABLES):
                conversations = conversation_rows(rng, plans)
                lap("conversations", await copy(conn, "conversations", CONVERSATION_COLUMNS, conversations))
                lap("messages", await copy(conn, "messages", MESSAGE_COLUMNS, message_rows(rng, plans, usage)))
                await conn.execute(ACTIVE_LEAVES)
                lap("usage_daily rows", await copy(conn, "usage_daily", USAGE_COLUMNS, usage_rows(usage)))
            lap("tables re-keyed and re-indexed", len(BULK_TABLES))
            # Figures of past days stored before this load (GetStats on the
            # empty database) no longer hold: GetStats recomputes them.
            await conn.execute("DELETE FROM stats_day")
        # Fresh statistics and visibility maps, as autovacuum would leave them
        # on a live database; without them the first queries plan badly.
        for table in ("users", "agents", *BULK_TABLES):
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        lap("tables vacuumed and analyzed", len(BULK_TABLES) + 2)
    finally:
        await conn.close()
    print("seeded: " + ", ".join(timings))
    print(f"heavy user: {HEAVY_USER_EMAIL} / {SEED_PASSWORD}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=12, help="top up the catalogue to this many agents")
    parser.add_argument("--days", type=int, default=90, help="spread accounts over this many past days")
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same shape)")
    args = parser.parse_args(argv)
    sizes = Sizes(args.users, args.conversations, args.messages, args.agents, args.days)
    if min(sizes.users, sizes.agents, sizes.days) < 1 or min(sizes.conversations, sizes.messages) < 0:
        parser.error("sizes must be positive")
    settings = Settings.from_env()
    asyncio.run(seed(resolve_database_url(settings), settings.db_schema, sizes, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
