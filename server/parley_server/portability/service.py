"""PortabilityService rules: export, import and delete a user's conversations as a whole.

Exports are streams of lines (export.py); the import reads lines from a
stream of chunks (lines.py), checks each (format.py) and stores it on its
own (importer.py), so one bad line costs only that line. Deleting all
conversations is ConversationService's, which tells their watchers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from parley_server.agents.access_service import AgentAccessService
from parley_server.common.caller import Caller
from parley_server.common.errors import NotFound, Reason
from parley_server.common.validation import only_uuid
from parley_server.conversations.service import ConversationService
from parley_server.db.database import Database
from parley_server.db.models import User
from parley_server.portability import export, importer
from parley_server.portability.format import MAX_LINE_BYTES, InvalidRecord, NotAConversation, parse_conversation
from parley_server.portability.importer import AgentUnavailable, LineResult, Outcome
from parley_server.portability.lines import read_lines

log = logging.getLogger(__name__)

# Lines one ImportConversations call reads: its response lists each.
MAX_RECORDS = 10_000


@dataclass
class ImportReport:
    """ImportConversations' answer: a result per non-blank line, in file order."""

    results: list[LineResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.results if result.outcome is outcome)


class PortabilityService:
    def __init__(self, database: Database, access: AgentAccessService, conversations: ConversationService) -> None:
        self._db = database
        self._access = access
        self._conversations = conversations

    def export_conversations(self, caller: Caller) -> AsyncIterator[bytes]:
        """The caller's conversations, a line each."""
        return export.conversation_lines(self._db, caller.user_id)

    async def export_user_conversations(self, caller: Caller, user_id: str) -> AsyncIterator[bytes]:
        """Any user's conversations, for an administrator."""
        uid = only_uuid("user_id", user_id)
        async with self._db.transaction() as db:
            if await db.get(User, uid) is None:
                raise NotFound("user not found", reason=Reason.USER_NOT_FOUND)
        log.info("admin %s exports the conversations of user %s", caller.user_id, uid)
        async for line in export.conversation_lines(self._db, uid):
            yield line

    async def export_account(self, caller: Caller) -> AsyncIterator[bytes]:
        """The account line, then the conversations."""
        yield await export.account_line(self._db, caller.user_id)
        async for line in export.conversation_lines(self._db, caller.user_id):
            yield line

    async def delete_all_conversations(self, caller: Caller) -> int:
        return await self._conversations.delete_all_conversations(caller)

    async def import_conversations(self, caller: Caller, chunks: AsyncIterator[bytes]) -> ImportReport:
        """Import every line of the file it can; the report says what became of each."""
        report = ImportReport()
        async for line in read_lines(chunks, MAX_LINE_BYTES):
            if line.data is not None and not line.data.strip():
                continue
            if len(report.results) == MAX_RECORDS:
                report.results.append(
                    LineResult(
                        line.number,
                        Outcome.FAILED,
                        error=f"an import reads at most {MAX_RECORDS:,} records: "
                        f"import line {line.number} onwards in another call",
                    )
                )
                break
            report.results.append(await self._import_line(caller, line.number, line.data))
        return report

    async def _import_line(self, caller: Caller, number: int, data: bytes | None) -> LineResult:
        if data is None:
            return LineResult(number, Outcome.FAILED, error=f"line: longer than {MAX_LINE_BYTES:,} bytes")
        try:
            record = parse_conversation(data)
        except NotAConversation:
            return LineResult(number, Outcome.IGNORED)
        except InvalidRecord as error:
            return LineResult(number, Outcome.FAILED, error.source_id, error=error.problems)
        try:
            outcome, cid = await importer.store(self._db, self._access, caller, record)
        except AgentUnavailable as error:
            return LineResult(number, Outcome.FAILED, record.source_id, error=str(error))
        return LineResult(number, outcome, record.source_id, cid)
