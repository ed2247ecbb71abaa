"""A FastAPI peer doing exactly GetConversation's work, for scripts/bench_unary.py.

`GET /conversations/{id}` with `Authorization: Bearer <access token>`: the
token is verified with PyJWT as Parley verifies it (HS256 pinned; exp, iat,
iss, aud, sub and sid required), then one async SQLAlchemy ORM read of the
caller's conversation by id, in a transaction, from Parley's own
`conversations` table, and the row goes out as JSON. No session check:
Parley caches that for a few seconds, so under load it costs Parley almost
nothing either.

The model below is this peer's own, not Parley's: the peer is what a small
FastAPI service reading the same table would be, and nothing more. Served by
uvicorn (uvloop and httptools, as uvicorn[standard] runs), configured by
environment variables so that `uvicorn --workers N` children get it too:

    PEER_DATABASE_URL=postgresql+asyncpg://... PEER_SCHEMA=parley PEER_JWT_SECRET=... \\
    PEER_JWT_ISSUER=parley PEER_JWT_AUDIENCE=parley-api PEER_POOL_SIZE=30 \\
    uvicorn benchmarks.fastapi_peer:app --port 8100 --workers 1
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    """The columns of Parley's `conversations` table that GetConversation returns."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID]
    agent_id: Mapped[uuid.UUID]
    title: Mapped[str]
    archived: Mapped[bool]
    pinned: Mapped[bool]
    message_count: Mapped[int]
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    last_message_time: Mapped[datetime | None]


class ConversationOut(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    title: str
    archived: bool
    pinned: bool
    message_count: int
    create_time: datetime
    update_time: datetime
    last_message_time: datetime | None


# Sized as Parley's pool (pool size, a third more in bursts), so neither waits longer for a connection.
POOL_SIZE = int(os.environ["PEER_POOL_SIZE"])
# Parley's tables live in its schema (PARLEY_DB_SCHEMA); its connections find them by search_path, and so do these.
engine = create_async_engine(
    os.environ["PEER_DATABASE_URL"],
    pool_size=POOL_SIZE,
    max_overflow=max(2, POOL_SIZE // 3),
    connect_args={"server_settings": {"search_path": f'"{os.environ["PEER_SCHEMA"]}"'}},
)
sessions = async_sessionmaker(engine, expire_on_commit=False)
SECRET = os.environ["PEER_JWT_SECRET"]
ISSUER = os.environ["PEER_JWT_ISSUER"]
AUDIENCE = os.environ["PEER_JWT_AUDIENCE"]


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


def caller(authorization: Annotated[str, Header()] = "") -> uuid.UUID:
    """The user id a valid bearer token names; 401 otherwise."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "send `Authorization: Bearer <token>`")
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
        )
        return uuid.UUID(claims["sub"])
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise HTTPException(401, "access token invalid") from exc


@app.get("/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: uuid.UUID, user_id: Annotated[uuid.UUID, Depends(caller)]
) -> ConversationOut:
    async with sessions() as session, session.begin():
        row = (
            await session.execute(
                select(ConversationRow).where(ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)
            )
        ).scalar_one_or_none()
    if row is None:
        raise HTTPException(404, "conversation not found")
    return ConversationOut.model_validate(row, from_attributes=True)
