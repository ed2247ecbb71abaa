"""AgentAccessService over real gRPC: the access rules, grants, quotas and usage."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text, update

from parley.agent.v1 import agent_pb2
from parley.agent_access.v1 import agent_access_pb2 as pb
from parley.client.terminal import FRIENDLY_REASONS
from parley.conversation.v1 import conversation_pb2
from parley_server.agents.access_rules import utc_day
from parley_server.agents.usage_sql import adding_usage_sql
from parley_server.common.clock import utcnow
from parley_server.common.errors import NotFound, PermissionDenied, ResourceExhausted
from parley_server.db.models import AgentGrant, UsageDaily
from tests.helpers.accounts import Account
from tests.helpers.agents import caller_of, create_agent, echo_agent, make_premium, seeded_ids, update_agent
from tests.helpers.database import snapshot
from tests.helpers.errors import expect_error
from tests.helpers.repo import REPO_ROOT
from tests.helpers.stubs import Stubs
from tests.helpers.timestamps import ts

INVALID = grpc.StatusCode.INVALID_ARGUMENT
R = pb.AccessReason
OK, PREMIUM_REQUIRED, NOT_GRANTED, DISABLED, QUOTA = (
    R.ACCESS_REASON_OK,
    R.ACCESS_REASON_PREMIUM_REQUIRED,
    R.ACCESS_REASON_NOT_GRANTED,
    R.ACCESS_REASON_AGENT_DISABLED,
    R.ACCESS_REASON_QUOTA_EXCEEDED,
)


async def grant(
    stubs: Stubs, admin: Account, user: Account, agent_id: str, expire: datetime | None = None
) -> pb.AgentGrant:
    response: pb.GrantAgentAccessResponse = await stubs.agent_access.GrantAgentAccess(
        pb.GrantAgentAccessRequest(user_id=user.user.id, agent_id=agent_id, expire_time=ts(expire) if expire else None),
        metadata=admin.md,
    )
    return response.grant


async def check(stubs: Stubs, account: Account, agent_id: str) -> pb.CheckAgentAccessResponse:
    response: pb.CheckAgentAccessResponse = await stubs.agent_access.CheckAgentAccess(
        pb.CheckAgentAccessRequest(agent_id=agent_id), metadata=account.md
    )
    return response


async def expire_grants(stubs: Stubs, user: Account) -> None:
    """Grants cannot be created in the past; age them in the database instead."""
    async with stubs.app.database.transaction() as db:
        await db.execute(
            update(AgentGrant)
            .where(AgentGrant.user_id == uuid.UUID(user.user.id))
            .values(expire_time=datetime.now(UTC) - timedelta(minutes=1))
        )


# Today's usage added as the end of an exchange adds it (chat/sql.py uses the same SQL).
RECORD_USAGE = adding_usage_sql(
    "(SELECT) AS one",
    user_id=":user_id",
    agent_id=":agent_id",
    day=":day",
    messages=":messages",
    prompt_tokens=":prompt_tokens",
    completion_tokens=":completion_tokens",
)


async def record(stubs: Stubs, user: Account, agent_id: str, prompt: int, completion: int, messages: int = 1) -> None:
    """Usage of the agent by user today, as if exchanges had ended."""
    values = {
        "user_id": uuid.UUID(user.user.id),
        "agent_id": uuid.UUID(agent_id),
        "day": utc_day(utcnow()),
        "messages": messages,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    async with stubs.app.database.autocommit() as conn:
        await conn.execute(text(RECORD_USAGE), values)


# -- the rules ---------------------------------------------------------------------


# Expected reason per caller kind, for the seeded public, premium and restricted agents.
MATRIX = {
    "plain": {"assistant": OK, "writer": PREMIUM_REQUIRED, "code-reviewer": NOT_GRANTED},
    "premium": {"assistant": OK, "writer": OK, "code-reviewer": NOT_GRANTED},
    "granted": {"assistant": OK, "writer": OK, "code-reviewer": OK},
    "expired": {"assistant": OK, "writer": PREMIUM_REQUIRED, "code-reviewer": NOT_GRANTED},
    "admin": {"assistant": OK, "writer": OK, "code-reviewer": OK},
}
DENIED = {PREMIUM_REQUIRED: "PREMIUM_REQUIRED", NOT_GRANTED: "NOT_GRANTED", DISABLED: "AGENT_DISABLED"}
WEB_ERRORS = REPO_ROOT / "clients" / "web" / "src" / "errors.ts"


def refusal_reason(reason: int) -> str:
    """ErrorInfo.reason of a refusal: the AccessReason name without its prefix (agent_access.proto)."""
    return R.Name(reason).removeprefix("ACCESS_REASON_")


async def test_a_refusal_names_the_access_reason_in_one_spelling_everywhere(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    plain = await stubs.active_account("plain@example.com")
    off = agent_pb2.Agent(id=ids["assistant"], enabled=False)
    await update_agent(stubs, await stubs.admin_account(), off, "enabled")
    for slug in ("writer", "code-reviewer", "assistant"):
        answer = await check(stubs, plain, ids[slug])
        assert answer.reason in DENIED, (slug, R.Name(answer.reason))
        await expect_error(
            stubs.conversation.CreateConversation(
                conversation_pb2.CreateConversationRequest(agent_id=ids[slug]), metadata=plain.md
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            refusal_reason(answer.reason),
        )
    # The clients explain exactly those spellings, and no other.
    web_keys = set(re.findall(r"^\s+([A-Z_]+):", WEB_ERRORS.read_text(), re.MULTILINE))
    spoken = {refusal_reason(r) for r in (PREMIUM_REQUIRED, NOT_GRANTED, DISABLED, QUOTA)}
    assert spoken <= web_keys and spoken <= FRIENDLY_REASONS.keys()
    assert not {k for k in web_keys if k.startswith("ACCESS_REASON_")}, (
        "errors.ts maps a spelling the server never sends"
    )


async def test_visibility_matrix_for_enabled_and_disabled_agents(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    callers = {
        "plain": await stubs.active_account("plain@example.com"),
        "premium": await stubs.active_account("premium@example.com"),
        "granted": await stubs.active_account("granted@example.com"),
        "expired": await stubs.active_account("expired@example.com"),
        "admin": admin,
    }
    await make_premium(stubs, callers["premium"])
    for slug in ("writer", "code-reviewer"):
        await grant(stubs, admin, callers["granted"], ids[slug], datetime.now(UTC) + timedelta(days=1))
        await grant(stubs, admin, callers["expired"], ids[slug])
    await expire_grants(stubs, callers["expired"])

    async def assert_matrix(expected: dict[str, dict[str, pb.AccessReason]]) -> None:
        for kind, account in callers.items():
            for slug, reason in expected[kind].items():
                answer = await check(stubs, account, ids[slug])
                assert (answer.allowed, answer.reason) == (reason == OK, reason), (kind, slug)
                assert not answer.HasField("remaining_quota")
                caller = await caller_of(stubs, account)
                async with stubs.app.database.transaction() as db:
                    if reason == OK:
                        agent = await stubs.app.access.require_access(db, caller, uuid.UUID(ids[slug]))
                        assert str(agent.id) == ids[slug]
                    else:
                        with pytest.raises(PermissionDenied) as denied:
                            await stubs.app.access.require_access(db, caller, uuid.UUID(ids[slug]))
                        assert denied.value.reason == DENIED[reason]
            listed = await stubs.agent.ListAgents(agent_pb2.ListAgentsRequest(), metadata=account.md)
            flags = {a.slug: a.accessible for a in listed.agents}
            assert flags == {slug: reason == OK for slug, reason in expected[kind].items()}, kind
            accessible = await stubs.agent_access.ListAccessibleAgents(
                pb.ListAccessibleAgentsRequest(), metadata=account.md
            )
            assert [a.slug for a in accessible.agents] == sorted(s for s, r in expected[kind].items() if r == OK), kind
            assert all(a.accessible for a in accessible.agents)

    await assert_matrix(MATRIX)
    for slug in ids:
        await update_agent(stubs, admin, agent_pb2.Agent(id=ids[slug], enabled=False), "enabled")
    await assert_matrix({kind: {slug: DISABLED for slug in ids} for kind in callers})


async def test_daily_quota_applies_to_non_premium_users_only(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    plain = await stubs.active_account("plain@example.com")
    premium = await stubs.active_account("premium@example.com")
    await make_premium(stubs, premium)
    assistant = ids["assistant"]
    await update_agent(stubs, admin, agent_pb2.Agent(id=assistant, daily_message_quota=2), "daily_message_quota")

    answer = await check(stubs, plain, assistant)
    assert answer.allowed and answer.remaining_quota == 2
    await record(stubs, plain, assistant, 10, 20)
    assert (await check(stubs, plain, assistant)).remaining_quota == 1
    await record(stubs, plain, assistant, 5, 7)
    answer = await check(stubs, plain, assistant)
    assert (answer.allowed, answer.reason, answer.remaining_quota) == (False, QUOTA, 0)
    flags = await stubs.agent.GetAgent(agent_pb2.GetAgentRequest(id=assistant), metadata=plain.md)
    assert not flags.agent.accessible
    accessible = await stubs.agent_access.ListAccessibleAgents(pb.ListAccessibleAgentsRequest(), metadata=plain.md)
    assert assistant not in [a.id for a in accessible.agents]
    caller = await caller_of(stubs, plain)
    async with stubs.app.database.transaction() as db:
        with pytest.raises(ResourceExhausted) as exhausted:
            await stubs.app.access.require_access(db, caller, uuid.UUID(assistant))
    assert exhausted.value.reason == "QUOTA_EXCEEDED"
    assert timedelta(0) < exhausted.value.retry_after <= timedelta(days=1)

    for account in (premium, admin):
        await record(stubs, account, assistant, 1, 1, messages=5)
        answer = await check(stubs, account, assistant)
        assert answer.allowed and not answer.HasField("remaining_quota")

    # Usage from yesterday does not count against today's quota.
    other = await stubs.active_account("other@example.com")
    async with stubs.app.database.transaction() as db:
        db.add(
            UsageDaily(
                user_id=uuid.UUID(other.user.id),
                agent_id=uuid.UUID(assistant),
                day=datetime.now(UTC).date() - timedelta(days=1),
                message_count=9,
                prompt_tokens=0,
                completion_tokens=0,
            )
        )
    assert (await check(stubs, other, assistant)).remaining_quota == 2


async def test_check_access_bad_and_unknown_agents(stubs: Stubs) -> None:
    admin = await stubs.admin_account()
    user = await stubs.active_account()
    bad = await expect_error(check(stubs, user, "not-a-uuid"), INVALID)
    assert bad.violations == {"agent_id": "must be a UUID"}
    await expect_error(check(stubs, user, str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")
    created = await create_agent(stubs, admin, echo_agent("doomed"))
    await stubs.agent.DeleteAgent(agent_pb2.DeleteAgentRequest(id=created.id), metadata=admin.md)
    await expect_error(check(stubs, user, created.id), grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")
    caller = await caller_of(stubs, user)
    async with stubs.app.database.transaction() as db:
        with pytest.raises(NotFound) as missing:
            await stubs.app.access.require_access(db, caller, uuid.UUID(created.id))
    assert missing.value.reason == "AGENT_NOT_FOUND"


# -- usage -------------------------------------------------------------------------


async def test_usage_per_agent_over_a_period(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    user = await stubs.active_account()
    await grant(stubs, admin, user, ids["code-reviewer"])
    quota = agent_pb2.Agent(id=ids["assistant"], daily_message_quota=10)
    await update_agent(stubs, admin, quota, "daily_message_quota")
    await record(stubs, user, ids["assistant"], 100, 200)
    await record(stubs, user, ids["assistant"], 1, 2)
    # Used, but no longer usable: listed with its usage and no remaining quota.
    await record(stubs, user, ids["writer"], 3, 4)
    today = datetime.now(UTC).date()
    async with stubs.app.database.transaction() as db:
        db.add(
            UsageDaily(
                user_id=uuid.UUID(user.user.id),
                agent_id=uuid.UUID(ids["assistant"]),
                day=today - timedelta(days=1),
                message_count=4,
                prompt_tokens=40,
                completion_tokens=80,
            )
        )

    response = await stubs.agent_access.GetUsage(pb.GetUsageRequest(), metadata=user.md)
    by_agent = {u.agent_id: u for u in response.usage}
    assert [u.agent_id for u in response.usage] == sorted(by_agent, key=uuid.UUID)
    assert set(by_agent) == set(ids.values())
    assistant = by_agent[ids["assistant"]]
    assert (assistant.message_count, assistant.prompt_tokens, assistant.completion_tokens) == (2, 101, 202)
    assert assistant.remaining_daily_quota == 8
    writer = by_agent[ids["writer"]]
    assert (writer.message_count, writer.prompt_tokens, writer.completion_tokens) == (1, 3, 4)
    assert not writer.HasField("remaining_daily_quota")
    reviewer = by_agent[ids["code-reviewer"]]
    assert reviewer.message_count == 0 and not reviewer.HasField("remaining_daily_quota")

    midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    two_days = await stubs.agent_access.GetUsage(
        pb.GetUsageRequest(start_time=ts(midnight - timedelta(hours=30))), metadata=user.md
    )
    assert {u.agent_id: u.message_count for u in two_days.usage}[ids["assistant"]] == 6
    yesterday = await stubs.agent_access.GetUsage(
        pb.GetUsageRequest(start_time=ts(midnight - timedelta(hours=1)), end_time=ts(midnight)), metadata=user.md
    )
    # A period ending at midnight does not include the day starting then.
    assert {u.agent_id: u.prompt_tokens for u in yesterday.usage}[ids["assistant"]] == 40

    other = await stubs.active_account("other@example.com")
    theirs = await stubs.agent_access.GetUsage(pb.GetUsageRequest(), metadata=other.md)
    assert [(u.agent_id, u.message_count) for u in theirs.usage] == [(ids["assistant"], 0)]


async def test_usage_rejects_bad_periods(stubs: Stubs) -> None:
    user = await stubs.active_account()
    now = datetime.now(UTC)
    bad = await expect_error(
        stubs.agent_access.GetUsage(
            pb.GetUsageRequest(start_time=ts(now), end_time=ts(now - timedelta(seconds=1))), metadata=user.md
        ),
        INVALID,
    )
    assert "end_time" in bad.violations
    # A start in the future with the default end (now) is a period ending before it starts.
    await expect_error(
        stubs.agent_access.GetUsage(pb.GetUsageRequest(start_time=ts(now + timedelta(days=1))), metadata=user.md),
        INVALID,
    )
    bad = await expect_error(
        stubs.agent_access.GetUsage(pb.GetUsageRequest(start_time=Timestamp(seconds=10**13)), metadata=user.md),
        INVALID,
    )
    assert "start_time" in bad.violations
    extreme = await stubs.agent_access.GetUsage(
        pb.GetUsageRequest(start_time=Timestamp(seconds=-62135596800), end_time=Timestamp(seconds=-62135596800)),
        metadata=user.md,
    )
    assert all(u.message_count == 0 for u in extreme.usage)


# -- grants ------------------------------------------------------------------------


async def test_grant_upserts_and_revoke_removes(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    other_admin = await stubs.admin_account("other-root@example.com")
    user = await stubs.active_account()
    reviewer = ids["code-reviewer"]
    first = await grant(stubs, admin, user, reviewer, datetime.now(UTC) + timedelta(hours=1))
    assert (first.user_id, first.agent_id, first.granted_by) == (user.user.id, reviewer, admin.user.id)
    assert first.HasField("expire_time") and first.create_time.seconds > 0
    assert (await check(stubs, user, reviewer)).allowed

    forever = await grant(stubs, other_admin, user, reviewer)
    assert forever.id == first.id and forever.create_time == first.create_time
    assert not forever.HasField("expire_time") and forever.granted_by == other_admin.user.id
    listed = await stubs.agent_access.ListAgentGrants(
        pb.ListAgentGrantsRequest(user_id=user.user.id), metadata=admin.md
    )
    assert [g.id for g in listed.grants] == [first.id]

    await stubs.agent_access.RevokeAgentAccess(
        pb.RevokeAgentAccessRequest(user_id=user.user.id, agent_id=reviewer), metadata=admin.md
    )
    assert (await check(stubs, user, reviewer)).reason == NOT_GRANTED
    await expect_error(
        stubs.agent_access.RevokeAgentAccess(
            pb.RevokeAgentAccessRequest(user_id=user.user.id, agent_id=reviewer), metadata=admin.md
        ),
        grpc.StatusCode.NOT_FOUND,
        "GRANT_NOT_FOUND",
    )


async def test_grant_rejects_bad_input_and_unknown_targets(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    user = await stubs.active_account()
    before = await snapshot(stubs.app)
    past = ts(datetime.now(UTC) - timedelta(seconds=1))
    cases = [
        (pb.GrantAgentAccessRequest(user_id=user.user.id, agent_id=ids["writer"], expire_time=past), {"expire_time"}),
        (pb.GrantAgentAccessRequest(user_id="u", agent_id="a"), {"user_id", "agent_id"}),
        (pb.GrantAgentAccessRequest(), {"user_id", "agent_id"}),
        (
            pb.GrantAgentAccessRequest(
                user_id=user.user.id, agent_id=ids["writer"], expire_time=Timestamp(seconds=1, nanos=-1)
            ),
            {"expire_time"},
        ),
    ]
    for request, fields in cases:
        bad = await expect_error(stubs.agent_access.GrantAgentAccess(request, metadata=admin.md), INVALID)
        assert set(bad.violations) == fields
    await expect_error(
        stubs.agent_access.GrantAgentAccess(
            pb.GrantAgentAccessRequest(user_id=str(uuid.uuid4()), agent_id=ids["writer"]), metadata=admin.md
        ),
        grpc.StatusCode.NOT_FOUND,
        "USER_NOT_FOUND",
    )
    await expect_error(
        stubs.agent_access.GrantAgentAccess(
            pb.GrantAgentAccessRequest(user_id=user.user.id, agent_id=str(uuid.uuid4())), metadata=admin.md
        ),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    bad = await expect_error(
        stubs.agent_access.RevokeAgentAccess(pb.RevokeAgentAccessRequest(user_id="x"), metadata=admin.md), INVALID
    )
    assert set(bad.violations) == {"user_id", "agent_id"}
    assert await snapshot(stubs.app) == before


async def test_list_grants_filters_and_pages_newest_first(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    admin = await stubs.admin_account()
    ann = await stubs.active_account("ann@example.com")
    ben = await stubs.active_account("ben@example.com")
    made = [
        await grant(stubs, admin, ann, ids["writer"]),
        await grant(stubs, admin, ann, ids["code-reviewer"]),
        await grant(stubs, admin, ben, ids["code-reviewer"]),
    ]
    await expire_grants(stubs, ben)

    async def listed(**filters: str) -> list[str]:
        found: list[str] = []
        token = ""
        while True:
            request = pb.ListAgentGrantsRequest(page_size=1, page_token=token, **filters)
            page = await stubs.agent_access.ListAgentGrants(request, metadata=admin.md)
            found += [g.id for g in page.grants]
            token = page.next_page_token
            if not token:
                return found

    newest_first = [g.id for g in reversed(made)]
    assert await listed() == newest_first
    assert await listed(user_id=ann.user.id) == newest_first[1:]
    assert await listed(agent_id=ids["code-reviewer"]) == newest_first[:2]  # the expired one included
    assert await listed(user_id=ben.user.id, agent_id=ids["writer"]) == []

    page = await stubs.agent_access.ListAgentGrants(pb.ListAgentGrantsRequest(page_size=1), metadata=admin.md)
    bad = await expect_error(
        stubs.agent_access.ListAgentGrants(
            pb.ListAgentGrantsRequest(page_token=page.next_page_token, user_id=ann.user.id), metadata=admin.md
        ),
        INVALID,
    )
    assert "page_token" in bad.violations
    bad = await expect_error(
        stubs.agent_access.ListAgentGrants(pb.ListAgentGrantsRequest(page_size=-5, user_id="nope"), metadata=admin.md),
        INVALID,
    )
    assert set(bad.violations) == {"page_size", "user_id"}


async def test_grant_administration_is_for_admins_only(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    user = await stubs.active_account()
    denied = grpc.StatusCode.PERMISSION_DENIED
    before = await snapshot(stubs.app)
    await expect_error(
        stubs.agent_access.GrantAgentAccess(
            pb.GrantAgentAccessRequest(user_id=user.user.id, agent_id=ids["code-reviewer"]), metadata=user.md
        ),
        denied,
    )
    await expect_error(
        stubs.agent_access.RevokeAgentAccess(
            pb.RevokeAgentAccessRequest(user_id=user.user.id, agent_id=ids["code-reviewer"]), metadata=user.md
        ),
        denied,
    )
    await expect_error(stubs.agent_access.ListAgentGrants(pb.ListAgentGrantsRequest(), metadata=user.md), denied)
    assert await snapshot(stubs.app) == before


async def test_record_usage_accumulates_per_day(stubs: Stubs) -> None:
    ids = await seeded_ids(stubs)
    user = await stubs.active_account()
    for _ in range(3):
        await record(stubs, user, ids["assistant"], 2, 3)
    async with stubs.app.database.transaction() as db:
        row = await db.get(UsageDaily, (uuid.UUID(user.user.id), uuid.UUID(ids["assistant"]), datetime.now(UTC).date()))
        assert row is not None
        assert (row.message_count, row.prompt_tokens, row.completion_tokens) == (3, 6, 9)
