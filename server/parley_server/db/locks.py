"""Every PostgreSQL advisory-lock key Parley takes, in one place.

Advisory locks of a database share one key space, so two uses that picked the
same key would serialise each other (or, with a try-lock, skip each other's
work) for no reason. Keeping every key here makes such a clash visible.

The space is the database's, not the schema's: two Parley installs in two
schemas of one database would clash on every fixed key. Each is therefore
taken `scoped()`: hashed with the schema's name by PostgreSQL
(hashtextextended, 64 bits), so each install has keys of its own.

| Key (each scoped)        | What it serialises                                | Mode                  | Scope       |
|--------------------------|---------------------------------------------------|-----------------------|-------------|
| MIGRATION_LOCK_KEY       | schema upgrades of replicas starting at once      | exclusive             | transaction |
| LAST_ADMIN_LOCK_KEY      | changes that may remove the last active admin     | exclusive             | transaction |
| STATS_LOCK_KEY           | stats fills against the trigger forgetting days   | shared / exclusive    | transaction |
| HOUSEKEEPING_LOCK_KEY    | housekeeping rounds, one replica at a time        | exclusive, try        | transaction |
| new_replica_key()        | a replica's life against the sweep of its orphans | exclusive; sweeps try | session     |
| fresh_conversation_key() | GetOrCreateFreshConversation of a user and agent  | exclusive             | transaction |

Where they are taken: db.migrate; accounts.admin_guard (UpdateUser,
DeleteUser, DeleteAccount); admin.stats_rollup's fills hold STATS_LOCK_KEY
shared and the usage_daily trigger of migration 0005 takes it exclusively;
common.housekeeping tries its key, and a replica that misses it skips the
round; events.bus holds a replica's key on its LISTEN connection while the
replica lives, and chat.generations' sweep tries other replicas' keys (for
its transaction) to find dead owners; conversations.service.

The fixed keys are short ASCII words read as big-endian numbers, the seeds of
their scoped hashes. Replica keys are random in [1, 2**62] and
fresh-conversation keys are 64-bit hashes of ids no two installs share, so
neither is scoped: that one key meets another has a chance of about one in
2**62.

A key never changes: migration own_schema wrote the scoped STATS_LOCK_KEY
into a trigger function of every deployed database (0005 wrote it unscoped,
before tables had a schema of their own), and during a rolling upgrade replicas of
two versions must agree on every key.
"""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import BigInteger, ColumnElement, func

MIGRATION_LOCK_KEY = 0x7061726C6579  # "parley"
LAST_ADMIN_LOCK_KEY = 0x61646D696E73  # "admins"
STATS_LOCK_KEY = 0x7374617473  # "stats"
HOUSEKEEPING_LOCK_KEY = 0x686F7573656B6565  # "housekee"


def scoped(key: int, schema: str | None = None) -> ColumnElement[int]:
    """A fixed key for the install in `schema`; by default the session's, the one
    schema on its search path (PostgreSQL hashes the name with the key as seed)."""
    return func.hashtextextended(func.current_schema() if schema is None else schema, key, type_=BigInteger)


def new_replica_key() -> int:
    """A key for a starting replica: random, so replicas need not coordinate, and never 0."""
    return secrets.randbits(62) + 1


def fresh_conversation_key(user_id: uuid.UUID, agent_id: uuid.UUID) -> ColumnElement[int]:
    """The key serialising GetOrCreateFreshConversation of one user and agent (PostgreSQL hashes it)."""
    return func.hashtextextended(f"fresh-conversation:{user_id}:{agent_id}", 0, type_=BigInteger)
