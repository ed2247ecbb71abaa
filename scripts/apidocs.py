"""Render docs/api.md, the API reference, from the protos (scripts/codegen.py runs it).

Everything in the page comes from one place that the code also reads:
- descriptions: the proto comments, read from a descriptor set built with
  `grpc_tools.protoc --include_source_info`;
- who may call each RPC, which API keys may, whether it is retried, and its
  REST path: its `(parley.api.v1.access)`, `(parley.api.v1.scope)`,
  `idempotency_level` and `google.api.http` options;
- the errors of each RPC: its `(parley.api.v1.errors)` option plus those its
  access level implies (`parley_server.transport.interceptors.access_policy`), with the
  meaning of each reason from `parley_server.common.errors.Reason`.
"""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as Field
from google.protobuf.descriptor_pb2 import MethodOptions

from parley.api.v1 import access_pb2
from parley.client import rpcs
from parley_server.common.errors import Reason
from parley_server.transport.interceptors.access_policy import ANY_RPC_ERRORS, LEVEL_ERRORS, LEVELS

DEFAULT_ADDR = "127.0.0.1:50051"
# SourceCodeInfo paths: FileDescriptorProto field numbers of message_type,
# enum_type and service, then DescriptorProto.field / EnumDescriptorProto.value
# / ServiceDescriptorProto.method.
MESSAGE, ENUM, SERVICE, MEMBER = 4, 5, 6, 2
IDEMPOTENCY = {
    MethodOptions.NO_SIDE_EFFECTS: "`NO_SIDE_EFFECTS`: a read; clients retry it when the server is unavailable",
    MethodOptions.IDEMPOTENT: "`IDEMPOTENT`: a repeat has the effect of one call; clients retry it",
    MethodOptions.IDEMPOTENCY_UNKNOWN: "not declared: a repeat may act twice; clients do not retry it",
}
SCALARS = {
    Field.TYPE_STRING: "string",
    Field.TYPE_BOOL: "bool",
    Field.TYPE_INT32: "int32",
    Field.TYPE_INT64: "int64",
    Field.TYPE_FLOAT: "float",
    Field.TYPE_DOUBLE: "double",
    Field.TYPE_BYTES: "bytes",
}
# Example values for grpcurl, by field name, then by type.
EXAMPLE_STRINGS = {
    "email": "ada@example.com",
    "password": "correct horse battery",
    "old_password": "correct horse battery",
    "new_password": "a new correct horse",
    "content": "Hello there",
    "title": "Trip to Lisbon",
    "display_name": "Ada",
    "query": "lisbon",
    "request_id": "5f0c6a3e-8d9b-4e0f-9a51-2b7c1d4e6f80",
}
EXAMPLE_MESSAGES: dict[str, object] = {
    ".google.protobuf.Timestamp": "2026-01-01T00:00:00Z",
    ".google.protobuf.Duration": "86400s",
    ".google.protobuf.FieldMask": "display_name",
}


def descriptor_set(proto_root: Path) -> descriptor_pb2.FileDescriptorSet:
    """Every proto file under proto_root with its comments (and its imports)."""
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "parley.binpb"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--proto_path={proto_root}",
                f"--proto_path={well_known}",
                "--include_source_info",
                "--include_imports",
                f"--descriptor_set_out={out}",
                *protos,
            ],
            check=True,
        )
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


class Catalogue:
    """The messages, enums and comments of a descriptor set, by full name."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = [f for f in files.file if f.package.startswith("parley.")]
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[tuple[str, ...], str] = {}
        for file in self.files:
            comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
            for i, message in enumerate(file.message_type):
                name = f".{file.package}.{message.name}"
                self.messages[name] = message
                self.comments[(name,)] = comments.get((MESSAGE, i), "")
                for j, field in enumerate(message.field):
                    self.comments[(name, field.name)] = comments.get((MESSAGE, i, MEMBER, j), "")
            for i, enum in enumerate(file.enum_type):
                name = f".{file.package}.{enum.name}"
                self.enums[name] = enum
                self.comments[(name,)] = comments.get((ENUM, i), "")
                for j, value in enumerate(enum.value):
                    self.comments[(name, value.name)] = comments.get((ENUM, i, MEMBER, j), "")
            for i, service in enumerate(file.service):
                name = f".{file.package}.{service.name}"
                self.comments[(name,)] = comments.get((SERVICE, i), "")
                for j, method in enumerate(service.method):
                    self.comments[(name, method.name)] = comments.get((SERVICE, i, MEMBER, j), "")

    def services(self) -> Iterator[tuple[descriptor_pb2.FileDescriptorProto, descriptor_pb2.ServiceDescriptorProto]]:
        for file in self.files:
            for service in file.service:
                yield file, service

    def comment(self, *key: str) -> str:
        return " ".join(self.comments.get(key, "").split())


def anchor(full_name: str) -> str:
    return full_name.lstrip(".").replace(".", "").lower()


def type_of(catalogue: Catalogue, field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in SCALARS:
        text = SCALARS[field.type]
    elif field.type_name in catalogue.messages or field.type_name in catalogue.enums:
        text = f"[{field.type_name.lstrip('.')}](#{anchor(field.type_name)})"
    else:
        text = field.type_name.lstrip(".")
    if field.label == Field.LABEL_REPEATED:
        return f"repeated {text}"
    return f"optional {text}" if field.proto3_optional else text


def cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def fields_table(catalogue: Catalogue, name: str) -> list[str]:
    message = catalogue.messages[name]
    if not message.field:
        return ["No fields."]
    oneofs = [o.name for o in message.oneof_decl]
    lines = ["| field | type | description |", "|---|---|---|"]
    for field in message.field:
        note = ""
        if field.HasField("oneof_index") and not field.proto3_optional:
            note = f"One of `{oneofs[field.oneof_index]}`. "
        lines.append(
            f"| `{field.name}` | {type_of(catalogue, field)} | {cell(note + catalogue.comment(name, field.name))} |"
        )
    return lines


def example_value(catalogue: Catalogue, field: descriptor_pb2.FieldDescriptorProto) -> object:
    if field.type == Field.TYPE_STRING:
        value: object = EXAMPLE_STRINGS.get(field.name, f"<{field.name}>")
    elif field.type == Field.TYPE_BOOL:
        value = True
    elif field.type in SCALARS:
        value = 20 if field.name == "page_size" else 1
    elif field.type == Field.TYPE_ENUM:
        values = catalogue.enums[field.type_name].value
        value = values[1].name if len(values) > 1 else values[0].name
    else:
        value = EXAMPLE_MESSAGES.get(field.type_name, {})
    return [value] if field.label == Field.LABEL_REPEATED else value


def example_request(catalogue: Catalogue, name: str) -> dict[str, object]:
    """Every top-level field of the request with a plausible value (oneofs: the first)."""
    request: dict[str, object] = {}
    seen_oneofs: set[int] = set()
    for field in catalogue.messages[name].field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            if field.oneof_index in seen_oneofs:
                continue
            seen_oneofs.add(field.oneof_index)
        request[field.name] = example_value(catalogue, field)
    return request


def grpcurl(
    catalogue: Catalogue, path: str, method: descriptor_pb2.MethodDescriptorProto, access: access_pb2.Access
) -> list[str]:
    parts = ["grpcurl -plaintext"]
    if access != access_pb2.ACCESS_PUBLIC:
        parts.append('-H "authorization: Bearer $ACCESS"')
    request = example_request(catalogue, method.input_type)
    if request:
        parts.append(f"-d '{json.dumps(request)}'")
    parts += [DEFAULT_ADDR, path]
    return ["```sh", " ".join(parts), "```"]


def errors_table(method: descriptor_pb2.MethodDescriptorProto, access: access_pb2.Access) -> list[str]:
    level = LEVELS[access]
    # protoc's .pyi declares extensions as plain FieldDescriptors, which the
    # protobuf stubs' Extensions[...] does not accept (as in parley.client.rpcs).
    cases: Sequence[access_pb2.ErrorCase] = method.options.Extensions[access_pb2.errors]  # type: ignore[index]
    rows = [(code, Reason[reason], "") for code, reason in ((c.code, c.reason) for c in cases)]
    rows += [(code, reason, " (every RPC)") for code, reason in ANY_RPC_ERRORS]
    rows += [(code, reason, f" (every {level.name.lower()} RPC)") for code, reason in LEVEL_ERRORS[level]]
    lines = ["| code | reason | meaning |", "|---|---|---|"]
    lines += [f"| `{code}` | `{reason}` | {cell(reason.meaning + note)} |" for code, reason, note in rows]
    return lines


def key_scope(method: descriptor_pb2.MethodDescriptorProto, access: access_pb2.Access) -> list[str]:
    """The `(parley.api.v1.scope)` line: which API keys may call the RPC (public RPCs need no credential)."""
    if access == access_pb2.ACCESS_PUBLIC:
        return []
    scope: access_pb2.Scope = method.options.Extensions[access_pb2.scope]  # type: ignore[index]  # as in errors_table
    if scope == access_pb2.SCOPE_UNSPECIFIED:
        return ["- **API keys:** refused (`API_KEY_NOT_ALLOWED`): sessions only"]
    return [f"- **API keys:** need `{access_pb2.Scope.Name(scope)}`"]


def rest_line(method: descriptor_pb2.MethodDescriptorProto) -> list[str]:
    """The RPC's REST path and verb through Envoy (its google.api.http rule), if it has one."""
    found = rpcs.options_http_rule(method.options)
    if found is None:
        return []
    verb, path, rule = found
    body = {"": "", "*": ", JSON body: the request"}.get(rule.body, f", JSON body: `{rule.body}`")
    return [f"- **REST:** `{verb.upper()} {path}`{body} (see the README's REST section)"]


def render_method(catalogue: Catalogue, service_name: str, method: descriptor_pb2.MethodDescriptorProto) -> list[str]:
    path = f"{service_name.lstrip('.')}/{method.name}"
    access: access_pb2.Access = method.options.Extensions[access_pb2.access]  # type: ignore[index]  # as in errors_table
    level = access_pb2.Access.Name(access).removeprefix("ACCESS_").lower()
    streaming = "server stream" if method.server_streaming else "unary"
    lines = [
        f'<a id="{anchor(service_name)}-{method.name.lower()}"></a>',
        "",
        f"### {method.name}",
        "",
        catalogue.comment(service_name, method.name),
        "",
        f"`{path}`, {streaming}.",
        "",
        f"- **Access:** {level} (see [Access levels](#access-levels))",
        *key_scope(method, access),
        f"- **Idempotency:** {IDEMPOTENCY[method.options.idempotency_level]}",
        *rest_line(method),
        "",
        f"**Request** `{method.input_type.lstrip('.')}`",
        "",
        *fields_table(catalogue, method.input_type),
        "",
        f"**Response** `{method.output_type.lstrip('.')}`"
        + (" (each message of the stream)" if method.server_streaming else ""),
        "",
        *fields_table(catalogue, method.output_type),
        "",
        "**Errors**",
        "",
        *errors_table(method, access),
        "",
        "**Example**",
        "",
        *grpcurl(catalogue, path, method, access),
        "",
    ]
    return lines


def render_access_levels(catalogue: Catalogue) -> list[str]:
    enum_name = ".parley.api.v1.Access"
    any_rpc = ", ".join(f"`{code}` `{reason}`" for code, reason in ANY_RPC_ERRORS)
    lines = [
        "## Access levels",
        "",
        f"{catalogue.comment(enum_name)} Any RPC can also return {any_rpc}.",
        "",
        "| level | who | errors it implies |",
        "|---|---|---|",
    ]
    for value in catalogue.enums[enum_name].value:
        if value.number not in LEVELS:
            continue
        number = cast(access_pb2.Access, value.number)  # a value of the Access enum, as its descriptor lists it
        implied = ", ".join(f"`{code}` `{reason}`" for code, reason in LEVEL_ERRORS[LEVELS[number]]) or "none"
        level = value.name.removeprefix("ACCESS_").lower()
        lines.append(f"| {level} | {cell(catalogue.comment(enum_name, value.name))} | {implied} |")
    return [*lines, ""]


def render_reasons() -> list[str]:
    lines = [
        "## Error reasons",
        "",
        "Every error carries a `google.rpc.Status` in `grpc-status-details-bin` with an `ErrorInfo`",
        "(domain `parley`) whose `reason` is one of these, plus `BadRequest` field violations for",
        "`INVALID_ARGUMENT` and `RetryInfo` for `RESOURCE_EXHAUSTED`. Branch on the reason, not on",
        "the message.",
        "",
        "| reason | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{reason}` | {cell(reason.meaning)} |" for reason in Reason]
    return [*lines, ""]


def render_types(catalogue: Catalogue, used_as_rpc_types: set[str]) -> list[str]:
    lines = ["## Messages and enums", ""]
    for name, _ in sorted(catalogue.messages.items()):
        if name in used_as_rpc_types or name.startswith(".parley.api."):
            continue
        lines += [f"### {name.lstrip('.')}", "", catalogue.comment(name), "", *fields_table(catalogue, name), ""]
    for name, enum in sorted(catalogue.enums.items()):
        if name.startswith(".parley.api."):
            continue
        lines += [f"### {name.lstrip('.')}", "", catalogue.comment(name), "", "| value | meaning |", "|---|---|"]
        lines += [f"| `{v.name}` | {cell(catalogue.comment(name, v.name))} |" for v in enum.value]
        lines.append("")
    return lines


def render(proto_root: Path) -> str:
    """The whole reference as Markdown."""
    catalogue = Catalogue(descriptor_set(proto_root))
    lines = [
        "# Parley API reference",
        "",
        "<!-- Generated from protos/ by scripts/codegen.py; do not edit. -->",
        "",
        "Generated from the protos: their comments, the `(parley.api.v1.access)`, `idempotency_level`",
        "and `(parley.api.v1.errors)` options of each RPC, and the server's list of error reasons.",
        "`python scripts/codegen.py` regenerates it and `--check` fails when it is stale.",
        "",
        "The server has reflection, so `grpcurl` needs no proto files. The examples use placeholder",
        "values; `ACCESS` is an access token from `AuthService/Login` (see the README's walk-through).",
        "",
        "## Services",
        "",
    ]
    used: set[str] = set()
    body: list[str] = []
    for file, service in catalogue.services():
        name = f".{file.package}.{service.name}"
        lines.append(
            f"- [{name.lstrip('.')}](#{anchor(name)}): "
            + ", ".join(f"[{m.name}](#{anchor(name)}-{m.name.lower()})" for m in service.method)
        )
        body += [f"## {name.lstrip('.')}", "", catalogue.comment(name), ""]
        for method in service.method:
            used |= {method.input_type, method.output_type}
            body += render_method(catalogue, name, method)
    lines += ["", *render_access_levels(catalogue), *render_reasons(), *body, *render_types(catalogue, used)]
    return "\n".join(lines).rstrip() + "\n"
