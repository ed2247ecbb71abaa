"""The per-RPC facts of the protos: every RPC states them, and they are coherent.

Who may call an RPC is its `(parley.api.v1.access)` option and whether it is
safe to retry is its `idempotency_level`; the server, the clients and the API
reference read them (`parley.client.rpcs`). These tests make a missing or
implausible declaration fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions
from parley.api.v1 import access_pb2
from parley.client import rpcs

METHODS = {rpcs.full_name(m): m for m in rpcs.methods()}


def test_every_proto_service_is_read(repo_root: Path) -> None:
    declared = set()
    for path in (repo_root / "protos").rglob("*.proto"):
        text = path.read_text()
        package = re.search(r"^package ([\w.]+);", text, re.M)
        declared |= {f"{package.group(1)}.{name}" for name in re.findall(r"^service (\w+)", text, re.M) if package}
    assert declared == {service.full_name for service in rpcs.SERVICES}, "list the proto in parley.client.rpcs.FILES"


@pytest.mark.parametrize("name", METHODS)
def test_every_rpc_declares_who_may_call_it(name: str) -> None:
    assert rpcs.access(METHODS[name]) != access_pb2.ACCESS_UNSPECIFIED, (
        f"{name}: add `option (parley.api.v1.access) = ACCESS_...;` to the rpc"
    )


def expected_idempotency(method: MethodDescriptor) -> int:
    """What the RPC's name and request say about retrying (AIP-130 standard methods, AIP-155)."""
    if re.match(r"(Get|List|Check)(?!OrCreate)", method.name):
        return MethodOptions.NO_SIDE_EFFECTS
    if method.name.startswith("Create") and "request_id" in method.input_type.fields_by_name:
        return MethodOptions.IDEMPOTENT
    if re.match(r"(Update|Delete|Create)", method.name):
        return MethodOptions.IDEMPOTENCY_UNKNOWN
    return -1  # custom method: its contract decides


@pytest.mark.parametrize("name", METHODS)
def test_idempotency_level_fits_the_contract(name: str) -> None:
    method = METHODS[name]
    level = method.GetOptions().idempotency_level
    expected = expected_idempotency(method)
    if expected != -1:
        assert level == expected, f"{name}: idempotency_level {level}, its kind of method says {expected}"
    if level == MethodOptions.NO_SIDE_EFFECTS:
        assert "request_id" not in method.input_type.fields_by_name, f"{name} dedupes writes, so it is no read"


def test_custom_methods_retried_by_clients() -> None:
    # Custom methods are retried only where their comment promises a repeat is harmless.
    custom = {
        name
        for name, method in METHODS.items()
        if expected_idempotency(method) == -1 and method.GetOptions().idempotency_level != MethodOptions.IDEMPOTENCY_UNKNOWN
    }
    assert custom == {
        "/parley.auth.v1.AuthService/JoinWaitlist",
        "/parley.conversation.v1.ConversationService/GetOrCreateFreshConversation",
        "/parley.chat.v1.ChatService/ResumeStream",
        "/parley.chat.v1.ChatService/CancelGeneration",
        "/parley.chat.v1.ChatService/WatchConversation",
    }
