"""Where the message tree is stored: the one place the importer and exporter name its columns."""

from __future__ import annotations

from parley_server.db.models import Message

# For a user message the message it follows (None for a root); for an
# assistant message the user message it answers.
PARENT = Message.parent_id
