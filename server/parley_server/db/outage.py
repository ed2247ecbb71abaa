"""Which errors mean "the database is not reachable right now".

One answer for the whole server: the error interceptor turns these into
UNAVAILABLE with RetryInfo (a retry will work once PostgreSQL is back), the
health status goes NOT_SERVING on them, background loops log them as one
line instead of a traceback, and start-up waits on them instead of failing.
Everything else is a real error.

The decision is made on types and SQLSTATE codes, never on message text
(which changes with versions and locales):

- SQLSTATE class 08 (connection exception), 57P01 admin shutdown
  ("terminating connection due to administrator command"), 57P02 crash
  shutdown, 57P03 cannot connect now ("the database system is starting up /
  shutting down") and 53300 too many connections. asyncpg raises these as
  `PostgresConnectionError` and its subclasses (08003 is "connection was
  closed in the middle of operation") and `AdminShutdownError` & co.;
  SQLAlchemy wraps them in a DBAPIError whose `orig.sqlstate` keeps the code.
- OSError (connection refused or reset, no route) and TimeoutError (a
  connect that never completed) from the socket itself.
- asyncpg's InternalClientError: a connection whose protocol PostgreSQL's
  shutdown left mid-operation ("cannot switch to state 12; another operation
  is in progress"), seen on pooled and LISTEN connections alike as the
  server goes down. The failing statement was never sent, the pool drops
  the connection, and a retry on a new one works once PostgreSQL is back.
- SQLAlchemy's pool TimeoutError: no connection could be had in time.
- A DBAPIError SQLAlchemy marked `connection_invalidated` (its dialect saw
  the connection closed under the statement).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08"})
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
    sa_exc.TimeoutError,
)


def unavailable_sqlstate(sqlstate: str | None) -> bool:
    """Whether a SQLSTATE says the server is unreachable, restarting or full."""
    return sqlstate is not None and (sqlstate in UNAVAILABLE_SQLSTATES or sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES)


def is_outage(error: BaseException) -> bool:
    """True when error (or what it wraps) means the database is away for now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGE_TYPES):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if unavailable_sqlstate(getattr(current, "sqlstate", None)):
            return True
        wrapped = current.orig if isinstance(current, sa_exc.StatementError) else None
        current = wrapped or current.__cause__
    return False
