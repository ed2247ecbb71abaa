"""The SMTP email backend against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from parley_server.app import build_app
from parley_server.db.migrate import migrate
from tests.helpers.accounts import PASSWORD
from tests.helpers.in_process import settings_for_tests
from tests.helpers.served import free_port
from tests.helpers.stubs import Stubs


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.received = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        self.received.set()
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


async def test_registration_email_is_delivered_over_smtp(
    stubs: Stubs, smtp: Any, tmp_root: Path, database_url: str
) -> None:
    controller, inbox = smtp
    settings = settings_for_tests(
        tmp_root, database_url, email_backend="smtp", smtp_host="127.0.0.1", smtp_port=controller.port
    )
    app = build_app(settings, database_url)
    await migrate(app.database)
    try:
        await app.auth.register("smtp@example.com", PASSWORD, "", "")
        # Delivery is in the background: the RPC never waits for the relay.
        await asyncio.wait_for(inbox.received.wait(), timeout=10)
    finally:
        await app.aclose()
    recipients, message = inbox.messages[0]
    assert recipients == ["smtp@example.com"]
    assert message["Subject"] == "Verify your Parley email address"
    assert "token=" in message.get_payload()


async def test_unreachable_relay_does_not_fail_the_rpc(stubs: Stubs, tmp_root: Path, database_url: str) -> None:
    settings = settings_for_tests(
        tmp_root,
        database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_timeout_seconds=2,
    )
    app = build_app(settings, database_url)
    try:
        user = await app.auth.register("nosmtp@example.com", PASSWORD, "", "")
        assert user.email == "nosmtp@example.com"  # stored; the failed delivery is only logged
    finally:
        await app.aclose()
