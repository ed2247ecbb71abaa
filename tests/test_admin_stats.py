"""AdminService GetStats, GetSystemHealth and CleanupEmptyConversations over real gRPC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from parley.admin.v1 import admin_pb2 as pb
from parley.auth.v1 import auth_pb2

from parley_server import __version__
from parley_server.app import App
from parley_server.db.database import Database
from parley_server.domain.activity import Activity
from parley_server.domain.admin_service import AdminService
from parley_server.domain.pagination import Paginator
from parley_server.domain.stats_service import Stats, StatsService, TtlCache
from tests.admin_support import expect_invalid
from tests.conversation_support import add_message, agent_id, new_conversation, sql
from tests.support import Account, Stubs

D1 = date(2025, 3, 1)
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 4, tzinfo=UTC)  # exclusive: D1, D2, D3


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


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
    response = await stubs.admin.GetStats(pb.GetStatsRequest(**request), metadata=admin.md)
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
    await expect_invalid(app, call(empty, metadata=md), "end_time")
    backwards = pb.GetStatsRequest(start_time=ts(END), end_time=ts(START))
    await expect_invalid(app, call(backwards, metadata=md), "end_time")
    too_long = pb.GetStatsRequest(start_time=ts(START), end_time=ts(START + timedelta(days=366, seconds=1)))
    await expect_invalid(app, call(too_long, metadata=md), "end_time")
    await call(pb.GetStatsRequest(start_time=ts(START), end_time=ts(START + timedelta(days=366))), metadata=md)
    future = pb.GetStatsRequest(start_time=ts(datetime.now(UTC) + timedelta(days=1)))
    await expect_invalid(app, call(future, metadata=md), "end_time")
    ancient = pb.GetStatsRequest(start_time=Timestamp(seconds=-62135596800))  # year 1
    await expect_invalid(app, call(ancient, metadata=md), "start_time")
    beyond = pb.GetStatsRequest(end_time=Timestamp(seconds=2**40))  # not a valid Timestamp at all
    await expect_invalid(app, call(beyond, metadata=md), "end_time")
    bad_nanos = pb.GetStatsRequest(start_time=Timestamp(seconds=0, nanos=-1))
    await expect_invalid(app, call(bad_nanos, metadata=md), "start_time")


async def test_system_health(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    health = await stubs.admin.GetSystemHealth(pb.GetSystemHealthRequest(), metadata=admin.md)
    assert health.database_reachable and health.version == __version__
    assert timedelta(0) < health.database_latency.ToTimedelta() < timedelta(seconds=2)
    assert health.uptime.ToTimedelta() > timedelta(0)
    assert health.active_chat_streams >= 0 and health.active_generations >= 0


def admin_service(app: App, database: Database, activity: Activity) -> AdminService:
    return AdminService(database, Paginator("p" * 32), app.sessions, app.auth, app.conversations, activity=activity)


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


async def test_system_health_reports_an_unreachable_database(stubs: Stubs) -> None:
    nowhere = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        health = await admin_service(stubs.app, nowhere, Activity()).system_health()
    finally:
        await nowhere.close()
    assert not health.database_reachable and health.database_latency is None
    assert health.version == __version__


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
    await expect_invalid(
        stubs.app, call(pb.CleanupEmptyConversationsRequest(older_than=Duration(seconds=-1)), metadata=md), "older_than"
    )
    await expect_invalid(
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


async def test_finished_days_are_reused_across_ranges_and_today_is_always_read(fresh_stats: Stubs) -> None:
    """Domain level, with the range cache off: what the per-day memory may and may not hide."""
    stubs = fresh_stats
    await stubs.admin_account()
    u1 = await add_user(stubs, "u1@example.com", "active", START)
    assistant = await agent_id(stubs.app, "assistant")
    today = datetime.now(UTC).date()
    for offset in (0, 1, 2, 4):
        await add_usage(stubs, u1, assistant, offset, 1 + offset)
    remembering = StatsService(stubs.app.database, cache_seconds=0, finished_day_seconds=3600)

    def per_day(stats: Stats) -> dict[date, int]:
        totals: dict[date, int] = {}
        for row in stats.messages_per_day_per_agent:
            totals[row.day] = totals.get(row.day, 0) + row.count
        return totals

    first = await remembering.get_stats(START + timedelta(days=1), END)  # D2, D3
    # A wider range reads only the days it lacks (two runs, D1 and D4..D5), and
    # agrees with a service that remembers nothing.
    wide = (START, END + timedelta(days=2))
    assert per_day(await remembering.get_stats(*wide)) == per_day(
        await StatsService(stubs.app.database).get_stats(*wide)
    )
    assert per_day(await remembering.get_stats(*wide)) == {
        D1: 1,
        D1 + timedelta(days=1): 2,
        D1 + timedelta(days=2): 3,
        D1 + timedelta(days=4): 5,
    }
    # A change to a finished day is not seen until the memory expires...
    await add_usage(stubs, u1, await agent_id(stubs.app, "writer"), 1, 7)
    again = await remembering.get_stats(START + timedelta(days=1), END)
    assert per_day(again) == per_day(first) and again.compute_time == first.compute_time
    # ...but today is read every time.
    recent = (datetime.combine(today, datetime.min.time(), UTC), datetime.now(UTC) + timedelta(minutes=1))
    before = await remembering.get_stats(*recent)
    await add_usage(stubs, u1, assistant, (today - D1).days, 9)
    after = await remembering.get_stats(*recent)
    assert sum(d.count for d in after.active_users_per_day) == sum(d.count for d in before.active_users_per_day) + 1
    remembering.clear_cache()
    assert per_day(await remembering.get_stats(START + timedelta(days=1), END)) == {
        D1 + timedelta(days=1): 2 + 7,
        D1 + timedelta(days=2): 3,
    }


async def test_ttl_cache_shares_one_computation_and_forgets_failures() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=60, max_entries=2)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    assert await asyncio.gather(cache.get("a", compute), cache.get("a", compute)) == [1, 1]
    assert calls == 1

    async def fail() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await cache.get("b", fail)
    assert await cache.get("b", compute) == 2  # the failure was not kept
    await cache.get("c", compute)  # evicts "a", the oldest
    assert await cache.get("a", compute) == 4
