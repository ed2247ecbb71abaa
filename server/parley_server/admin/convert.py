"""Conversions between the admin domain's values and the parley.admin.v1 messages."""

from __future__ import annotations

from parley.admin.v1 import admin_pb2
from parley.auth.v1 import auth_pb2
from parley_server.accounts.convert import ROLE_FROM_PROTO, STATE_FROM_PROTO, STATE_TO_PROTO
from parley_server.admin.replicas import ReplicaStatus
from parley_server.admin.service import SystemHealth, UserChanges, UserFilter, WaitlistItem
from parley_server.admin.stats_service import Stats
from parley_server.common.convert import duration, enum_from_proto, timestamp


def user_filter_from_proto(request: admin_pb2.ListUsersRequest) -> UserFilter:
    return UserFilter(
        email_contains=request.email_contains,
        role=enum_from_proto("role", request.role, ROLE_FROM_PROTO),
        state=enum_from_proto("state", request.state, STATE_FROM_PROTO),
        premium=request.premium if request.HasField("premium") else None,
    )


def user_changes_from_proto(user: auth_pb2.User, paths: list[str]) -> UserChanges:
    """The values of an UpdateUser; fields outside the mask are not read (AIP-134), whatever they hold."""
    return UserChanges(
        role=enum_from_proto("user.role", user.role, ROLE_FROM_PROTO) if "role" in paths else None,
        state=enum_from_proto("user.state", user.state, STATE_FROM_PROTO) if "state" in paths else None,
        premium=user.premium,
        display_name=user.display_name,
    )


def waitlist_entry_to_proto(item: WaitlistItem) -> admin_pb2.WaitlistEntry:
    entry = item.entry
    return admin_pb2.WaitlistEntry(
        id=str(entry.id),
        email=entry.email,
        note=entry.note,
        position=item.position,
        create_time=timestamp(entry.create_time),
        approve_time=timestamp(entry.approve_time),
        invite_sent=entry.invite_sent,
    )


def stats_to_proto(stats: Stats) -> admin_pb2.Stats:
    return admin_pb2.Stats(
        users_by_state=[
            admin_pb2.UserStateCount(state=proto, count=stats.users_by_state[state])
            for state, proto in STATE_TO_PROTO.items()
        ],
        total_users=stats.total_users,
        total_conversations=stats.total_conversations,
        total_messages=stats.total_messages,
        new_users_per_day=[admin_pb2.DailyCount(day=d.day.isoformat(), count=d.count) for d in stats.new_users_per_day],
        active_users_per_day=[
            admin_pb2.DailyCount(day=d.day.isoformat(), count=d.count) for d in stats.active_users_per_day
        ],
        messages_per_day_per_agent=[
            admin_pb2.AgentDailyCount(day=m.day.isoformat(), agent_id=str(m.agent_id), count=m.count)
            for m in stats.messages_per_day_per_agent
        ],
        top_agents=[
            admin_pb2.AgentCount(agent_id=str(a.agent_id), agent_name=a.agent_name, message_count=a.message_count)
            for a in stats.top_agents
        ],
        compute_time=timestamp(stats.compute_time),
        feedback_per_day_per_agent=[
            admin_pb2.AgentDailyFeedback(
                day=f.day.isoformat(), agent_id=str(f.agent_id), thumbs_up=f.thumbs_up, thumbs_down=f.thumbs_down
            )
            for f in stats.feedback_per_day_per_agent
        ],
    )


def system_health_to_proto(health: SystemHealth) -> admin_pb2.GetSystemHealthResponse:
    return admin_pb2.GetSystemHealthResponse(
        database_reachable=health.database_reachable,
        database_latency=duration(health.database_latency) if health.database_latency is not None else None,
        uptime=duration(health.uptime),
        version=health.version,
        active_chat_streams=health.active_chat_streams,
        active_generations=health.active_generations,
        replicas=[replica_to_proto(replica) for replica in health.replicas],
    )


def replica_to_proto(replica: ReplicaStatus) -> admin_pb2.Replica:
    return admin_pb2.Replica(
        id=str(replica.id),
        address=replica.address,
        host=replica.host,
        pid=replica.pid,
        version=replica.version,
        start_time=timestamp(replica.start_time),
        heartbeat_time=timestamp(replica.heartbeat_time),
        active_chat_streams=replica.chat_streams,
        active_generations=replica.generations,
        current=replica.current,
    )
