"""Message search vectors are stored uncompressed

messages.content_search holds a tsvector about twice the size of its text
(every lexeme with its positions): a user message of 200 words (1.7 kB, a
3.2 kB vector) made a row of about 5 kB, over PostgreSQL's 2 kB TOAST
threshold, so each insert ran pglz over the vector. In a burst of 1,000
SendMessage calls (scripts/bench_chat.py, PostgreSQL 15, perf) pglz was 23%
of PostgreSQL's CPU, the writes of the starts waiting on it. The vector is
read back only to recheck a phrase query's candidates (the GIN index holds
its own lexemes), so it now goes out of line as it is (STORAGE EXTERNAL):
256 such starts in one statement cost the backend 60-70 ms of CPU against
80-110 ms before. Rows under the threshold are stored inline, as before.

Only the catalog changes: rows already stored stay compressed until rewritten.

Revision ID: 0014_search_vector_uncompressed
Revises: 0013_search_ended_messages
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_search_vector_uncompressed"
down_revision: str | None = "0013_search_ended_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ALTER COLUMN content_search SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE messages ALTER COLUMN content_search SET STORAGE EXTENDED")
