"""AdminService GetStats, GetSystemHealth and CleanupEmptyConversations over real gRPC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select, text

from parley.admin.v1 import admin_pb2 as pb
from parley.agent.v1 import agent_pb2
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley_server import __version__
from parley_server.admin import stats_rollup
from parley_server.admin.replicas import Heartbeat
from parley_server.admin.service import AdminService
from parley_server.admin.stats_rollup import FILL_PARTS, SETTLE
from parley_server.admin.stats_service import StatsService
from parley_server.app import App
from parley_server.common.activity import Activity
from parley_server.common.pagination import Paginator
from parley_server.db.database import Database
from parley_server.db.locks import STATS_LOCK_KEY, scoped
from parley_server.settings import DEFAULT_DB_SCHEMA
from tests.helpers.accounts import Account
from tests.helpers.agents import agent_id
from tests.helpers.conversations import add_message, new_conversation
from tests.helpers.database import sql
from tests.helpers.errors import expect_invalid_naming
from tests.helpers.stubs import Stubs
from tests.helpers.timestamps import ts

D1 = date(2025, 3, 1)
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 4, tzinfo=UTC)  # exclusive: D1, D2, D3


def day(n: int) -> str:
    return (D1 + timedelta(days=n)).isoformat()


@pytest.fixture
async def fresh_stats(stubs: Stubs) -> AsyncIterator[Stubs]:
    """Stubs with the statistics cache emptied (the app outlives each test's data)."""
    stubs.app.admin.clear_stats_cache()
    yield stubs
    stubs.app.admin.clear_stats_cache()


async def add_user(stubs: Stubs, email: str, state: str, created: datetime) -> str:
    user_id = str(uuid.uuid4())
    await sql(
        stubs.app,
        "INSERT INTO users (id, email, password_hash, display_name, role, state, premium, email_verified, create_time)"
        " VALUES (:id, :email, 'x', '', 'user', CAST(:state AS user_state), false, false, :created)",
        id=user_id,
        email=email,
        state=state,
        created=created,
    )
    return user_id


async def add_agent(stubs: Stubs, slug: str) -> str:
    rows = await sql(
        stubs.app,
        "INSERT INTO agents (id, slug, name, description, visibility, enabled, provider, model, base_url,"
        " api_key_env, system_prompt, temperature, max_output_tokens, title_generation, version)"
        " VALUES (gen_random_uuid(), :slug, :name, '', 'public', true, 'echo', 'echo', '', '', '', 0.7, 1024,"
        " false, 1) RETURNING id",
        slug=slug,
        name=f"Agent {slug}",
    )
    return str(rows[0][0])


async def add_usage(stubs: Stubs, user: str, agent: str, offset: int, messages: int) -> None:
    await sql(
        stubs.app,
        "INSERT INTO usage_daily (user_id, agent_id, day, message_count, prompt_tokens, completion_tokens)"
        " VALUES (:user, :agent, :day, :messages, 10, 20)",
        user=user,
        agent=agent,
        day=D1 + timedelta(days=offset),
        messages=messages,
    )


async def get_stats(stubs: Stubs, admin: Account, **request: Timestamp) -> pb.Stats:
    response: pb.GetStatsResponse = await stubs.admin.GetStats(pb.GetStatsRequest(**request), metadata=admin.md)
    return response.stats


async def test_stats_on_a_known_data_set(fresh_stats: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    u1 = await add_user(stubs, "u1@example.com", "active", START + timedelta(hours=10))
    u2 = await add_user(stubs, "u2@example.com", "pending_verification", END - timedelta(days=2, seconds=1))
    u3 = await add_user(stubs, "u3@example.com", "disabled", START + timedelta(days=2))
    await add_user(stubs, "early@example.com", "active", START - timedelta(seconds=1))
    assistant, writer = await agent_id(stubs.app, "assistant"), await agent_id(stubs.app, "writer")
    await add_usage(stubs, u1, assistant, 0, 5)
    await add_usage(stubs, u1, writer, 0, 2)
    await add_usage(stubs, u2, assistant, 0, 1)
    await add_usage(stubs, u1, assistant, 1, 3)
    await add_usage(stubs, u3, assistant, 2, 0)  # tokens only: neither active nor a message
    await add_usage(stubs, u2, writer, 2, 4)
    await add_usage(stubs, u1, assistant, -1, 100)  # outside the range on both sides
    await add_usage(stubs, u1, assistant, 3, 100)
    extras = {await add_agent(stubs, f"extra-{n}"): 11 + n for n in range(9)}
    for extra, count in extras.items():
        await add_usage(stubs, u1, extra, 1, count)
    conversation = await new_conversation(stubs, admin, "counted")
    await add_message(stubs, admin, conversation.id, "one")
    await add_message(stubs, admin, conversation.id, "two")
    await new_conversation(stubs, admin, "empty")

    stats = await get_stats(stubs, admin, start_time=ts(START), end_time=ts(END))

    assert [(c.state, c.count) for c in stats.users_by_state] == [
        (auth_pb2.USER_STATE_PENDING_VERIFICATION, 1),
        (auth_pb2.USER_STATE_ACTIVE, 3),
        (auth_pb2.USER_STATE_WAITLISTED, 0),
        (auth_pb2.USER_STATE_DISABLED, 1),
    ]
    assert stats.total_users == 5
    assert (stats.total_conversations, stats.total_messages) == (2, 2)
    assert (await sql(stubs.app, "SELECT count(*) FROM messages"))[0][0] == 2
    assert [(d.day, d.count) for d in stats.new_users_per_day] == [(day(0), 2), (day(1), 0), (day(2), 1)]
    assert [(d.day, d.count) for d in stats.active_users_per_day] == [(day(0), 2), (day(1), 1), (day(2), 1)]
    expected = sorted(
        [(day(0), assistant, 6), (day(0), writer, 2), (day(1), assistant, 3), (day(2), writer, 4)]
        + [(day(1), extra, count) for extra, count in extras.items()],
        key=lambda row: (row[0], uuid.UUID(row[1])),
    )
    assert [(m.day, m.agent_id, m.count) for m in stats.messages_per_day_per_agent] == expected
    # Ten at most, most messages first: the nine extras (19..11), then Assistant (9); Writer (6) is cut.
    assert [(a.agent_name, a.message_count) for a in stats.top_agents] == [
        *((f"Agent extra-{n}", 11 + n) for n in reversed(range(9))),
        ("Assistant", 9),
    ]
    assert stats.top_agents[-1].agent_id == assistant
    assert abs(stats.compute_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)


async def test_stats_count_chat_messages_sent_per_agent_and_every_stored_message_in_total(
    fresh_stats: Stubs,
) -> None:
    """Two SendMessage exchanges and one CreateMessage: 2 chat messages sent, 5 stored (admin.proto)."""
    stubs = fresh_stats
    admin = await stubs.admin_account()
    user = await stubs.active_account()
    conversation = await new_conversation(stubs, user, "chat")
    for content in ("first question", "second question"):
        events = [
            e
            async for e in stubs.chat.SendMessage(
                chat_pb2.SendMessageRequest(conversation_id=conversation.id, content=content), metadata=user.md
            )
        ]
        assert events[-1].WhichOneof("event") == "completed"
    await add_message(stubs, user, conversation.id, "a note added with CreateMessage")
    assistant = await agent_id(stubs.app, "assistant")
    today = datetime.now(UTC).date().isoformat()
    async with asyncio.timeout(10):  # an exchange without a quota is counted as its answer ends
        while True:
            stubs.app.admin.clear_stats_cache()
            stats = await get_stats(stubs, admin)
            if sum(a.message_count for a in stats.top_agents) >= 2:
                break
            await asyncio.sleep(0.05)
    assert stats.total_messages == 5
    assert [(m.day, m.agent_id, m.count) for m in stats.messages_per_day_per_agent] == [(today, assistant, 2)]
    assert [(a.agent_id, a.message_count) for a in stats.top_agents] == [(assistant, 2)]
    assert stats.active_users_per_day[-1].count == 1


async def test_stats_default_to_the_last_30_days_up_to_now(fresh_stats: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    stats = await get_stats(stubs, admin)
    today = datetime.now(UTC).date()
    days = [d.day for d in stats.new_users_per_day]
    assert days[-1] == today.isoformat() and days[0] == (today - timedelta(days=30)).isoformat()
    assert [d.day for d in stats.active_users_per_day] == days
    assert stats.new_users_per_day[-1].count == 1 and stats.total_users == 1  # the admin, just created


async def test_stats_are_cached_briefly(fresh_stats: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    window = {"start_time": ts(end - timedelta(days=7)), "end_time": ts(end)}
    first = await get_stats(stubs, admin, **window)
    await stubs.register("new@example.com")
    cached = await get_stats(stubs, admin, **window)
    assert cached == first and cached.total_users == 1
    stubs.app.admin.clear_stats_cache()
    fresh = await get_stats(stubs, admin, **window)
    assert fresh.total_users == 2 and fresh.compute_time.ToDatetime() > first.compute_time.ToDatetime()


async def test_stats_reject_bad_ranges(fresh_stats: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    app, call, md = stubs.app, stubs.admin.GetStats, admin.md
    empty = pb.GetStatsRequest(start_time=ts(START), end_time=ts(START))
    await expect_invalid_naming(app, call(empty, metadata=md), "end_time")
    backwards = pb.GetStatsRequest(start_time=ts(END), end_time=ts(START))
    await expect_invalid_naming(app, call(backwards, metadata=md), "end_time")
    too_long = pb.GetStatsRequest(start_time=ts(START), end_time=ts(START + timedelta(days=366, seconds=1)))
    await expect_invalid_naming(app, call(too_long, metadata=md), "end_time")
    await call(pb.GetStatsRequest(start_time=ts(START), end_time=ts(START + timedelta(days=366))), metadata=md)
    future = pb.GetStatsRequest(start_time=ts(datetime.now(UTC) + timedelta(days=1)))
    await expect_invalid_naming(app, call(future, metadata=md), "end_time")
    ancient = pb.GetStatsRequest(start_time=Timestamp(seconds=-62135596800))  # year 1
    await expect_invalid_naming(app, call(ancient, metadata=md), "start_time")
    beyond = pb.GetStatsRequest(end_time=Timestamp(seconds=2**40))  # not a valid Timestamp at all
    await expect_invalid_naming(app, call(beyond, metadata=md), "end_time")
    bad_nanos = pb.GetStatsRequest(start_time=Timestamp(seconds=0, nanos=-1))
    await expect_invalid_naming(app, call(bad_nanos, metadata=md), "start_time")


async def test_system_health(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    health = await stubs.admin.GetSystemHealth(pb.GetSystemHealthRequest(), metadata=admin.md)
    assert health.database_reachable and health.version == __version__
    assert timedelta(0) < health.database_latency.ToTimedelta() < timedelta(seconds=2)
    assert health.uptime.ToTimedelta() > timedelta(0)
    assert health.active_chat_streams >= 0 and health.active_generations >= 0


def admin_service(app: App, database: Database, activity: Activity) -> AdminService:
    """An AdminService of a replica that is not serving (its heartbeat never ran)."""
    heartbeat = Heartbeat(database, activity, address="127.0.0.1:1", interval=5)
    return AdminService(
        database, Paginator("p" * 32), app.sessions, app.auth, app.conversations, activity=activity, heartbeat=heartbeat
    )


async def test_system_health_counts_this_replicas_streams_and_generations(stubs: Stubs) -> None:
    activity = Activity()
    service = admin_service(stubs.app, stubs.app.database, activity)
    idle = await service.system_health()
    with activity.chat_stream(), activity.generation(), activity.generation():
        busy = await service.system_health()
    after = await service.system_health()
    assert (idle.active_chat_streams, idle.active_generations) == (0, 0)
    assert (busy.active_chat_streams, busy.active_generations) == (1, 2)
    assert (after.active_chat_streams, after.active_generations) == (0, 0)
    assert idle.uptime <= busy.uptime <= after.uptime
    # In the list too, as this replica's own entry: live counts, even though it never recorded a heartbeat.
    (own,) = [replica for replica in busy.replicas if replica.current]
    assert (own.chat_streams, own.generations, own.heartbeat_time) == (1, 2, None)


async def test_system_health_reports_an_unreachable_database(stubs: Stubs) -> None:
    nowhere = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none", schema=DEFAULT_DB_SCHEMA)
    try:
        health = await admin_service(stubs.app, nowhere, Activity()).system_health()
    finally:
        await nowhere.close()
    assert not health.database_reachable and health.database_latency is None
    assert health.version == __version__
    # The other replicas are unknown; the list holds this one alone.
    assert [(replica.current, replica.address) for replica in health.replicas] == [(True, "127.0.0.1:1")]


async def test_cleanup_empty_conversations_of_every_user(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    ada = await stubs.active_account()
    bob = await stubs.active_account("bob@example.com")
    old_ada = await new_conversation(stubs, ada, "old, empty")
    old_bob = await new_conversation(stubs, bob, "old, empty")
    old_full = await new_conversation(stubs, bob, "old, has a message")
    await add_message(stubs, bob, old_full.id, "hi")
    fresh = await new_conversation(stubs, ada, "new, empty")
    await sql(
        stubs.app,
        "UPDATE conversations SET create_time = now() - interval '25 hours' WHERE id IN (:a, :b, :c)",
        a=old_ada.id,
        b=old_bob.id,
        c=old_full.id,
    )
    call, md = stubs.admin.CleanupEmptyConversations, admin.md
    await expect_invalid_naming(
        stubs.app, call(pb.CleanupEmptyConversationsRequest(older_than=Duration(seconds=-1)), metadata=md), "older_than"
    )
    await expect_invalid_naming(
        stubs.app,
        call(pb.CleanupEmptyConversationsRequest(older_than=Duration(seconds=2**62)), metadata=md),
        "older_than",
    )
    response = await call(pb.CleanupEmptyConversationsRequest(), metadata=md)
    assert response.deleted_count == 2
    left = {str(row[0]) for row in await sql(stubs.app, "SELECT id FROM conversations")}
    assert left == {old_full.id, fresh.id}
    response = await call(pb.CleanupEmptyConversationsRequest(older_than=Duration(seconds=0)), metadata=md)
    assert response.deleted_count == 1
    assert {str(row[0]) for row in await sql(stubs.app, "SELECT id FROM conversations")} == {old_full.id}


# -- stored figures of finished days ------------------------------------------

Usage = tuple[list[tuple[str, int]], list[tuple[str, str, int]]]


def usage_of(stats: pb.Stats) -> Usage:
    """The per-day usage series of stats: active users, and messages per agent."""
    return (
        [(d.day, d.count) for d in stats.active_users_per_day],
        [(m.day, m.agent_id, m.count) for m in stats.messages_per_day_per_agent],
    )


async def usage_from_rows(stubs: Stubs, first: date, last: date) -> Usage:
    """The same series computed directly from usage_daily, the plainest way."""
    active = await sql(
        stubs.app,
        "SELECT d.day, count(DISTINCT u.user_id) FILTER (WHERE u.message_count > 0)"
        " FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') AS d(day)"
        " LEFT JOIN usage_daily u ON u.day = d.day GROUP BY d.day ORDER BY d.day",
        first=first,
        last=last,
    )
    per_agent = await sql(
        stubs.app,
        "SELECT day, agent_id, sum(message_count) FROM usage_daily WHERE day BETWEEN :first AND :last"
        " GROUP BY day, agent_id HAVING sum(message_count) > 0 ORDER BY day, agent_id",
        first=first,
        last=last,
    )
    return (
        [(d.date().isoformat(), n) for d, n in active],
        [(d.isoformat(), str(agent), int(n)) for d, agent, n in per_agent],
    )


async def stored_days(stubs: Stubs) -> list[tuple[str, int]]:
    return [(d.isoformat(), n) for d, n in await sql(stubs.app, "SELECT day, active_users FROM stats_day ORDER BY day")]


async def busy_days(stubs: Stubs) -> None:
    """Three users and two agents over D1..D5: a user on two agents, a day of
    tokens only, a day without usage."""
    users = [await add_user(stubs, f"u{n}@example.com", "active", START - timedelta(days=1)) for n in range(3)]
    agents = [await agent_id(stubs.app, "assistant"), await agent_id(stubs.app, "writer")]
    for user, agent, offset, messages in [
        (0, 0, 0, 5), (0, 1, 0, 2), (1, 0, 0, 1),  # D1: user 0 on both agents counts once
        (1, 1, 1, 4), (2, 1, 1, 3),
        (2, 0, 2, 0),  # D3: tokens only, neither active nor a message
        # D4: nothing
        (0, 0, 4, 7), (1, 0, 4, 1), (2, 1, 4, 2),
    ]:  # fmt: skip
        await add_usage(stubs, users[user], agents[agent], offset, messages)


async def test_stored_days_give_the_figures_usage_daily_gives(fresh_stats: Stubs, replica: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    await busy_days(stubs)
    window = {"start_time": ts(START), "end_time": ts(START + timedelta(days=5))}
    expected = await usage_from_rows(stubs, D1, D1 + timedelta(days=4))
    assert expected[0] == [(day(0), 2), (day(1), 2), (day(2), 0), (day(3), 0), (day(4), 3)]
    assert await stored_days(stubs) == []

    computed = await get_stats(stubs, admin, **window)  # the days are computed, then stored
    assert await stored_days(stubs) == expected[0]
    stubs.app.admin.clear_stats_cache()
    from_storage = await get_stats(stubs, admin, **window)
    replica.app.admin.clear_stats_cache()
    other_replica = await get_stats(replica, admin, **window)

    for stats in (computed, from_storage, other_replica):
        assert usage_of(stats) == expected
        assert stats.top_agents == computed.top_agents
    assert [(a.agent_name, a.message_count) for a in computed.top_agents] == [("Assistant", 14), ("Writing Coach", 11)]
    # Served from the stored rows, not computed again: a change to them shows.
    await sql(stubs.app, "UPDATE stats_day SET active_users = 99 WHERE day = :day", day=D1)
    stubs.app.admin.clear_stats_cache()
    assert (await get_stats(stubs, admin, **window)).active_users_per_day[0].count == 99


async def test_recent_days_are_read_live_until_settled(fresh_stats: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Today, and yesterday until SETTLE after midnight, are read from usage_daily every time."""
    stubs = fresh_stats
    await stubs.admin_account()
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    midnight = datetime.combine(today, datetime.min.time(), UTC)
    u1 = await add_user(stubs, "u1@example.com", "active", START)
    u2 = await add_user(stubs, "u2@example.com", "active", START)
    assistant = await agent_id(stubs.app, "assistant")
    await add_usage(stubs, u1, assistant, (yesterday - D1).days, 1)
    await add_usage(stubs, u1, assistant, (today - D1).days, 2)
    service = StatsService(stubs.app.database, cache_seconds=0)
    recent = (midnight - timedelta(days=1), midnight + timedelta(days=1))

    async def active_users_at(now: datetime) -> list[int]:
        monkeypatch.setattr(stats_rollup, "utcnow", lambda: now)
        return [d.count for d in (await service.get_stats(*recent)).active_users_per_day]

    assert await active_users_at(midnight + SETTLE - timedelta(seconds=1)) == [1, 1]
    assert await stored_days(stubs) == []
    await add_usage(stubs, u2, assistant, (yesterday - D1).days, 1)  # a late write to yesterday
    assert await active_users_at(midnight + SETTLE) == [2, 1]
    assert await stored_days(stubs) == [(yesterday.isoformat(), 2)]
    await add_usage(stubs, u2, assistant, (today - D1).days, 1)
    assert await active_users_at(midnight + SETTLE + timedelta(hours=1)) == [2, 2]
    assert await stored_days(stubs) == [(yesterday.isoformat(), 2)]


async def test_deleted_accounts_leave_stored_days_at_once(fresh_stats: Stubs) -> None:
    """DeleteUser and DeleteAccount forget the stored days of the usage they delete, in
    the same transaction; a soft-deleted agent keeps its usage history, so its days stay."""
    stubs = fresh_stats
    admin = await stubs.admin_account()
    ada = await stubs.active_account("ada@example.com")
    bob = await stubs.active_account("bob@example.com")
    carl = await add_user(stubs, "carl@example.com", "active", START)
    assistant, writer = await agent_id(stubs.app, "assistant"), await agent_id(stubs.app, "writer")
    for user, agent, offset, messages in [
        (ada.user.id, assistant, 0, 3), (ada.user.id, writer, 0, 2), (ada.user.id, assistant, 1, 4),
        (bob.user.id, writer, 1, 5), (bob.user.id, assistant, 2, 1),
        (carl, assistant, 0, 1), (carl, assistant, 1, 2), (carl, writer, 2, 3),
    ]:  # fmt: skip
        await add_usage(stubs, user, agent, offset, messages)
    last = D1 + timedelta(days=2)

    def window(minutes: int) -> dict[str, Timestamp]:
        """D1..D3, ending a few minutes earlier each time: a new range, so no cached result."""
        return {"start_time": ts(START), "end_time": ts(END - timedelta(minutes=minutes))}

    before = await get_stats(stubs, admin, **window(0))
    assert usage_of(before) == await usage_from_rows(stubs, D1, last)
    assert await stored_days(stubs) == [(day(0), 2), (day(1), 3), (day(2), 2)]

    await stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=ada.user.id), metadata=admin.md)
    assert await stored_days(stubs) == [(day(2), 2)]  # ada's days: gone when the call returns
    await stubs.auth.DeleteAccount(auth_pb2.DeleteAccountRequest(password=bob.password), metadata=bob.md)
    assert await stored_days(stubs) == []

    after = await get_stats(stubs, admin, **window(1))
    expected = await usage_from_rows(stubs, D1, last)
    assert usage_of(after) == expected
    assert expected[0] == [(day(0), 1), (day(1), 1), (day(2), 1)]  # carl alone
    assert expected[1] == [(day(0), assistant, 1), (day(1), assistant, 2), (day(2), writer, 3)]

    await stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=writer), metadata=admin.md)
    assert await stored_days(stubs) == [(day(0), 1), (day(1), 1), (day(2), 1)]
    assert usage_of(await get_stats(stubs, admin, **window(2))) == expected


async def stats_lock_waiters(stubs: Stubs, expected: int) -> None:
    """Return once `expected` transactions wait for STATS_LOCK_KEY."""
    waiting = 0
    for _ in range(200):
        rows = await sql(
            stubs.app,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND (classid::bigint << 32) + objid::bigint = hashtextextended(current_schema(), :key)",
            key=STATS_LOCK_KEY,
        )
        waiting = rows[0][0]
        if waiting == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{waiting} waiting for the stats lock, expected {expected}")


async def test_a_fill_running_while_an_account_is_deleted_is_forgotten_too(fresh_stats: Stubs) -> None:
    """A fill that read the usage before the delete committed must not outlive it."""
    stubs = fresh_stats
    admin = await stubs.admin_account()
    ada = await add_user(stubs, "ada@example.com", "active", START)
    await add_usage(stubs, ada, await agent_id(stubs.app, "assistant"), 0, 3)
    async with stubs.app.database.transaction() as db:
        # What a fill does: the lock shared, then it stores figures that count ada.
        await db.execute(select(func.pg_advisory_xact_lock_shared(scoped(STATS_LOCK_KEY))))
        await db.execute(text("INSERT INTO stats_day (day, active_users) VALUES (:day, 1)"), {"day": D1})
        delete = asyncio.ensure_future(stubs.admin.DeleteUser(pb.DeleteUserRequest(user_id=ada), metadata=admin.md))
        await stats_lock_waiters(stubs, 1)  # the delete waits for the fill to commit...
    await delete
    assert await stored_days(stubs) == []  # ...then forgets what it stored


async def test_replicas_filling_the_same_days_at_once_store_them_once(fresh_stats: Stubs, replica: Stubs) -> None:
    stubs = fresh_stats
    admin = await stubs.admin_account()
    replica.app.admin.clear_stats_cache()
    await busy_days(stubs)
    window = {"start_time": ts(START), "end_time": ts(END)}  # D1..D3, none stored yet
    expected = await usage_from_rows(stubs, D1, D1 + timedelta(days=2))
    fills_per_call = min(3, FILL_PARTS)
    # Holding the lock a forgetting delete takes makes both replicas find the days
    # missing and wait to fill them; releasing it lets their fills run together.
    async with stubs.app.database.transaction() as db:
        await db.execute(select(func.pg_advisory_xact_lock(scoped(STATS_LOCK_KEY))))
        calls = [asyncio.ensure_future(get_stats(s, admin, **window)) for s in (stubs, replica)]
        await stats_lock_waiters(stubs, 2 * fills_per_call)
    results = await asyncio.gather(*calls)

    assert [usage_of(stats) for stats in results] == [expected, expected]
    assert await stored_days(stubs) == expected[0]
    stored_agents = await sql(stubs.app, "SELECT day, agent_id, messages FROM stats_day_agent ORDER BY day, agent_id")
    assert [(d.isoformat(), str(agent), n) for d, agent, n in stored_agents] == expected[1]
