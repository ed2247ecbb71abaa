"""The per-RPC facts of the protos: every RPC states them, and they are coherent.

Who may call an RPC is its `(parley.api.v1.access)` option, whether it is
safe to retry is its `idempotency_level`, and the errors it returns besides
those of its access level are its `(parley.api.v1.errors)`; the server, the
clients and the API reference read them (`parley.client.rpcs`). These tests
make a missing or implausible declaration fail. (That the server sends no
undeclared error is checked over the whole run: see tests/conftest.py.)
"""

from __future__ import annotations

import re

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from parley.api.v1 import access_pb2
from parley.client import rpcs
from parley.client.terminal import FRIENDLY_REASONS
from parley_server.agents.access_rules import AccessReason
from parley_server.common.errors import Reason
from parley_server.transport.interceptors.access_policy import Access, implied_errors
from tests.helpers.repo import REPO_ROOT

METHODS = {rpcs.full_name(m): m for m in rpcs.methods()}


def test_every_proto_service_is_read() -> None:
    declared = set()
    for path in (REPO_ROOT / "protos").rglob("*.proto"):
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
        if expected_idempotency(method) == -1
        and method.GetOptions().idempotency_level != MethodOptions.IDEMPOTENCY_UNKNOWN
    }
    assert custom == {
        "/parley.auth.v1.AuthService/JoinWaitlist",
        "/parley.conversation.v1.ConversationService/GetOrCreateFreshConversation",
        "/parley.conversation.v1.ConversationService/SwitchBranch",
        "/parley.chat.v1.ChatService/ResumeStream",
        "/parley.chat.v1.ChatService/CancelGeneration",
        "/parley.chat.v1.ChatService/WatchConversation",
        "/parley.api_key.v1.ApiKeyService/RevokeApiKey",
        "/parley.api_key.v1.ServiceAccountService/RevokeServiceAccountKey",
        "/parley.feedback.v1.FeedbackService/SetMessageFeedback",
        "/parley.portability.v1.PortabilityService/ExportConversations",
        "/parley.portability.v1.PortabilityService/ExportUserConversations",
        "/parley.portability.v1.PortabilityService/ImportConversations",
        "/parley.portability.v1.PortabilityService/ExportAccount",
    }


def test_declared_errors_name_real_codes_and_reasons() -> None:
    for name, method in METHODS.items():
        for code, reason in rpcs.declared_errors(method):
            assert code in grpc.StatusCode.__members__, f"{name}: unknown status code {code!r}"
            assert reason in Reason.__members__, f"{name}: {reason!r} is not a member of common.errors.Reason"


@pytest.mark.parametrize("name", METHODS)
def test_rpcs_with_request_fields_declare_invalid_argument(name: str) -> None:
    # Every field a caller sends is checked, and a bad one is INVALID_ARGUMENT.
    method = METHODS[name]
    declared = ("INVALID_ARGUMENT", Reason.INVALID_ARGUMENT) in rpcs.declared_errors(method)
    assert declared == bool(method.input_type.fields), name


def test_every_reason_can_reach_a_caller() -> None:
    # A reason no RPC declares or implies is dead, or an RPC forgot to declare it.
    sent = {reason for method in METHODS.values() for _, reason in rpcs.declared_errors(method)}
    sent |= {reason for level in Access for _, reason in implied_errors(level)}
    for_unknown_methods = {Reason.METHOD_NOT_ALLOWED, Reason.UNIMPLEMENTED}
    assert set(Reason) - for_unknown_methods == sent


def test_agent_access_reasons_are_error_reasons() -> None:
    # PERMISSION_DENIED for an agent carries the AccessReason's name.
    assert {r.name for r in AccessReason if r is not AccessReason.OK} <= Reason.__members__.keys()


def test_clients_explain_only_real_reasons() -> None:
    page = (REPO_ROOT / "clients/web/src/errors.ts").read_text()
    block = page[page.index("const REASONS") : page.index("};", page.index("const REASONS"))]
    page_reasons = set(re.findall(r"^\s+([A-Z_]+):", block, re.M))
    assert page_reasons and page_reasons <= Reason.__members__.keys(), page_reasons - Reason.__members__.keys()
    assert FRIENDLY_REASONS.keys() <= Reason.__members__.keys()


# RPCs an API key may never call: logging in and out, passwords, deleting the
# account, managing keys (a leaked key must not make more keys), and the
# account export (a leaked key must not read the account's sessions and keys).
SESSIONS_ONLY = {
    "/parley.portability.v1.PortabilityService/ExportAccount",
    "/parley.auth.v1.AuthService/Logout",
    "/parley.auth.v1.AuthService/ChangePassword",
    "/parley.auth.v1.AuthService/ResendVerificationEmail",
    "/parley.auth.v1.AuthService/DeleteAccount",
    *(name for name in METHODS if name.startswith("/parley.api_key.v1.")),
}


def expected_scope(name: str, method: MethodDescriptor) -> int:
    """The scope a key needs, from what the RPC is (see parley.api.v1.Scope)."""
    if rpcs.access(method) == access_pb2.ACCESS_PUBLIC or name in SESSIONS_ONLY:
        return access_pb2.SCOPE_UNSPECIFIED
    if method.containing_service.full_name == "parley.chat.v1.ChatService":
        return access_pb2.SCOPE_CHAT
    if rpcs.access(method) == access_pb2.ACCESS_ADMIN:
        return access_pb2.SCOPE_ADMIN
    if method.GetOptions().idempotency_level == MethodOptions.NO_SIDE_EFFECTS:
        return access_pb2.SCOPE_READ
    return access_pb2.SCOPE_WRITE


@pytest.mark.parametrize("name", METHODS)
def test_every_rpc_declares_the_scope_a_key_needs(name: str) -> None:
    method = METHODS[name]
    expected = expected_scope(name, method)
    assert rpcs.scope(method) == expected, (
        f"{name}: set `option (parley.api.v1.scope) = {access_pb2.Scope.Name(expected)};`"
        if expected
        else f"{name}: sessions only, so no (parley.api.v1.scope) option"
    )


@pytest.mark.parametrize("name", METHODS)
def test_every_rpc_has_a_rest_mapping(name: str) -> None:
    """Envoy serves each RPC as REST/JSON by its `google.api.http` rule (AIP-127): a
    new RPC without one would be missing from the REST API and the OpenAPI document.
    A client stream takes its messages as one JSON array (tests/bridge/test_rest.py)."""
    method = METHODS[name]
    found = rpcs.http_rule(method)
    assert found, f'{name}: add `option (google.api.http) = {{post: "/v1/...:verb" body: "*"}};` (see README)'
    verb, path, rule = found
    assert path.startswith("/v1/"), f"{name}: REST paths start with /v1/"
    # A GET is a read and every read is a GET (AIP-131, 132, 136); reads and deletes take no body.
    reads = method.GetOptions().idempotency_level == MethodOptions.NO_SIDE_EFFECTS
    assert (verb == "get") == reads, f"{name}: {verb.upper()}, but idempotency_level says read={reads}"
    assert bool(rule.body) == (verb not in ("get", "delete")), f"{name}: body {rule.body!r} with {verb.upper()}"
    for variable in re.findall(r"\{([\w.]+)\}", path):
        message = method.input_type
        *parents, leaf = variable.split(".")
        for parent in parents:
            parent_message = message.fields_by_name[parent].message_type
            assert parent_message is not None, f"{name}: {{{variable}}}: {parent} is no message field"
            message = parent_message
        assert leaf in message.fields_by_name, f"{name}: {{{variable}}} names no request field"


def test_no_two_rpcs_share_a_rest_path_and_verb() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, method in METHODS.items():
        found = rpcs.http_rule(method)
        if found:
            verb, path, _ = found
            assert (verb, path) not in seen, f"{name} and {seen[(verb, path)]}: both {verb.upper()} {path}"
            seen[(verb, path)] = name
