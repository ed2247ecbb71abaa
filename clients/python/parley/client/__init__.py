"""A small typed async client for Parley (hand-written; not generated).

    from parley.client import ParleyClient, TextDelta

    async with ParleyClient("127.0.0.1:50051") as client:
        await client.login(email, password)
        async for event in client.send_message(conversation_id, "Hello"):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)

`parley.client.terminal` is the interactive terminal client (`parley chat`).
"""

from parley.client._auth import Tokens
from parley.client.channel import channel_options, service_config
from parley.client.client import ParleyClient, file_chunks
from parley.client.errors import ParleyError
from parley.client.events import (
    Accepted,
    Cancelled,
    ChatEvent,
    Completed,
    ConversationDeleted,
    ConversationUpdated,
    Failed,
    MessageCompleted,
    MessageCreated,
    MessageDelta,
    TextDelta,
    Usage,
    WatchEvent,
)
from parley.client.tls import Tls, explain_connection_failure

__all__ = [
    "Accepted",
    "Cancelled",
    "ChatEvent",
    "Completed",
    "ConversationDeleted",
    "ConversationUpdated",
    "Failed",
    "MessageCompleted",
    "MessageCreated",
    "MessageDelta",
    "ParleyClient",
    "ParleyError",
    "TextDelta",
    "Tls",
    "Tokens",
    "Usage",
    "WatchEvent",
    "channel_options",
    "explain_connection_failure",
    "file_chunks",
    "service_config",
]
