"""The last-admin guard, shared by every path that can remove an active admin.

UpdateUser (demote, disable), DeleteUser and DeleteAccount all take one
transaction-scoped advisory lock before counting the other active admins, so
two such operations at once are serialised and the second sees the first's
result: Parley can never end up without an active administrator.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.common.errors import FailedPrecondition, Reason
from parley_server.db.locks import LAST_ADMIN_LOCK_KEY, scoped
from parley_server.db.models import Role, User, UserState


def is_active_admin(user: User) -> bool:
    return user.role is Role.ADMIN and user.state is UserState.ACTIVE


async def lock_admin_guard(db: AsyncSession) -> None:
    """Serialise operations that may remove an active admin, until this transaction ends.

    Take it before any row lock, so a holder of the lock never waits for a row.
    """
    await db.execute(select(func.pg_advisory_xact_lock(scoped(LAST_ADMIN_LOCK_KEY))))


async def ensure_another_active_admin(db: AsyncSession, user_id: uuid.UUID) -> None:
    others = await db.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.state == UserState.ACTIVE, User.id != user_id)
    )
    if not others:
        raise FailedPrecondition(
            "this is the last active administrator; promote another account first", reason=Reason.LAST_ADMIN
        )
