"""Every Parley RPC, and the facts its proto method options state about it.

The protos are the one place that says who may call an RPC (the
`(parley.api.v1.access)` option), which scope an API key needs for it
(`(parley.api.v1.scope)`), whether it is safe to retry (the standard
`idempotency_level`), which errors it returns besides those its access
level implies (`(parley.api.v1.errors)`), and its REST path and verb through
Envoy (`google.api.http`). The server's access table, this
client's retry and token rules, the tests and the generated API reference all
read them through this module, so none of them keeps its own list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from parley.admin.v1 import admin_pb2
from parley.agent.v1 import agent_pb2
from parley.agent_access.v1 import agent_access_pb2
from parley.api.v1 import access_pb2
from parley.api_key.v1 import api_key_pb2
from parley.auth.v1 import auth_pb2
from parley.chat.v1 import chat_pb2
from parley.conversation.v1 import conversation_pb2
from parley.feedback.v1 import feedback_pb2
from parley.portability.v1 import portability_pb2

__all__ = [
    "FILES",
    "SERVICES",
    "access",
    "declared_errors",
    "full_name",
    "http_rule",
    "options_http_rule",
    "methods",
    "retry_safe",
    "scope",
]

# The generated modules of every proto file that declares a service; a test
# checks this against protos/.
FILES: tuple[ModuleType, ...] = (
    auth_pb2,
    conversation_pb2,
    agent_access_pb2,
    agent_pb2,
    admin_pb2,
    chat_pb2,
    api_key_pb2,
    feedback_pb2,
    portability_pb2,
)

SERVICES: tuple[ServiceDescriptor, ...] = tuple(
    service for module in FILES for service in module.DESCRIPTOR.services_by_name.values()
)

# idempotency_level values a client may retry: reads, and calls whose repeat
# has the effect of one call.
RETRY_SAFE = frozenset({MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT})


def methods() -> Iterator[MethodDescriptor]:
    """Every RPC of every Parley service, in proto order."""
    for service in SERVICES:
        yield from service.methods


def full_name(method: MethodDescriptor) -> str:
    """The gRPC path of an RPC, e.g. `/parley.auth.v1.AuthService/Login`."""
    return f"/{method.containing_service.full_name}/{method.name}"


# protoc's .pyi files declare extensions as plain FieldDescriptors, which the
# protobuf stubs' Extensions[...] does not accept; hence the ignores below.


def access(method: MethodDescriptor) -> access_pb2.Access:
    """The `(parley.api.v1.access)` option; ACCESS_UNSPECIFIED when it is missing."""
    option: access_pb2.Access = method.GetOptions().Extensions[access_pb2.access]  # type: ignore[index]
    return option


def scope(method: MethodDescriptor) -> access_pb2.Scope:
    """The `(parley.api.v1.scope)` option: the scope an API key needs; SCOPE_UNSPECIFIED = sessions only."""
    option: access_pb2.Scope = method.GetOptions().Extensions[access_pb2.scope]  # type: ignore[index]
    return option


def retry_safe(method: MethodDescriptor) -> bool:
    """Whether idempotency_level says a repeated attempt is harmless."""
    return method.GetOptions().idempotency_level in RETRY_SAFE


def declared_errors(method: MethodDescriptor) -> list[tuple[str, str]]:
    """The `(parley.api.v1.errors)` option as (status code name, reason) pairs."""
    cases: Sequence[access_pb2.ErrorCase] = method.GetOptions().Extensions[access_pb2.errors]  # type: ignore[index]
    return [(case.code, case.reason) for case in cases]


def http_rule(method: MethodDescriptor) -> tuple[str, str, http_pb2.HttpRule] | None:
    """The `google.api.http` option as (verb, path template, rule), e.g. ("get",
    "/v1/conversations/{conversation_id}", ...); None when the RPC has no REST form."""
    return options_http_rule(method.GetOptions())


def options_http_rule(options: MethodOptions) -> tuple[str, str, http_pb2.HttpRule] | None:
    """http_rule of a method's options, also as read from a descriptor set (scripts/apidocs.py)."""
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        return None
    return verb, str(getattr(rule, verb)), rule
