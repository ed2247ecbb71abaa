"""The REST/JSON face of the protos (scripts/codegen.py runs it): Envoy's descriptor set and the OpenAPI document.

Both come from the descriptor set that `apidocs.descriptor_set` builds from
`protos/`, so the `google.api.http` rule of each RPC is stated once, in its proto:

- `parley.binpb`, what Envoy's gRPC-JSON transcoder reads: every file of the
  protos without comments, plus `google/rpc/status.proto` and
  `google/rpc/error_details.proto` (from the googleapis-common-protos wheel,
  as the server uses them), which `convert_grpc_status` needs to print an
  error's details (ErrorInfo, BadRequest, RetryInfo) as JSON.
- `openapi.json`, an OpenAPI 2.0 (Swagger) document written by
  `protoc-gen-swagger` from Debian's golang-grpc-gateway package, with the
  comments as descriptions; this module then adds what that generator has no
  input for without extra proto options: the title, the bearer scheme, the
  error body, the line-per-message framing of streams, operation ids named
  `Service_Method` (the plugin names them `Method`, and two services have a
  `CleanupEmptyConversations`), and the query parameters of rules whose body
  is one field (this plugin version lists query parameters only without a body).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import apidocs  # beside this script
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2

from parley.client import rpcs

SWAGGER_PLUGIN = "protoc-gen-swagger"
SWAGGER_PACKAGE = "golang-grpc-gateway"
# The plugin merges only files of one Go package; the protos name none (no Go
# code is generated from them), so its input gets this one, in memory only.
ONE_GO_PACKAGE = "parley"
ERROR_SCHEMA = "rpcStatus"
# Swagger types of the request fields that may travel in a query string; a
# field of another type there fails the generation (KeyError) until added here.
QUERY_TYPES: dict[str | int, str] = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "boolean",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "integer",
    ".google.protobuf.FieldMask": "string",
}
STREAM_DESCRIPTION = "A stream: one JSON message per line (newline-delimited JSON), each sent as it happens."
DESCRIPTION = """\
Parley's gRPC API over HTTP/JSON, served by Envoy's gRPC-JSON transcoder on the \
same port as the web page (`PARLEY_ENVOY_ADDR`). Each operation is one RPC; its \
path and verb are the RPC's `google.api.http` rule, and the API reference \
(docs/api.md) says who may call it and which errors it returns.

- **Authentication:** `Authorization: Bearer <access token or API key>`, as over gRPC.
- **Fields** are the proto field names (`conversation_id`); requests may also use \
the lowerCamelCase JSON names. Path and query parameters fill the request's \
other fields.
- **Streams** (SendMessage, ResumeStream, WatchConversation) answer \
`200` with one JSON message per line (newline-delimited JSON) as they arrive.
- **Errors** answer the HTTP status of the gRPC code (400 INVALID_ARGUMENT, \
401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 \
RESOURCE_EXHAUSTED, 503 UNAVAILABLE, ...) with a `google.rpc.Status` body \
whose details carry an ErrorInfo reason and, for bad input, BadRequest field \
violations. An error after a stream began ends the stream instead.
"""


def plugin_path() -> str | None:
    """protoc-gen-swagger on PATH, if Debian's golang-grpc-gateway is installed."""
    return shutil.which(SWAGGER_PLUGIN)


def _with_dependencies(file: FileDescriptor, into: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    """Add file after the files it imports (Envoy builds them in order), unless already there."""
    for dependency in file.dependencies:
        _with_dependencies(dependency, into)
    if file.name not in into:
        into[file.name] = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)


def envoy_descriptor_set(files: descriptor_pb2.FileDescriptorSet) -> bytes:
    """The transcoder's descriptor set: the protos' files without comments, and google.rpc's."""
    by_name: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for file in files.file:
        bare = descriptor_pb2.FileDescriptorProto()
        bare.CopyFrom(file)
        bare.ClearField("source_code_info")
        by_name[file.name] = bare
    for module in (status_pb2, error_details_pb2):
        _with_dependencies(module.DESCRIPTOR, by_name)
    return descriptor_pb2.FileDescriptorSet(file=by_name.values()).SerializeToString(deterministic=True)


def _run_plugin(plugin: str, files: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """protoc-gen-swagger over every file with a service, merged into one document."""
    request = plugin_pb2.CodeGeneratorRequest(parameter="allow_merge=true,merge_file_name=parley")
    for file in files.file:
        copy = request.proto_file.add()
        copy.CopyFrom(file)
        copy.options.go_package = ONE_GO_PACKAGE
        if file.package.startswith("parley.") and file.service:
            request.file_to_generate.append(file.name)
    result = subprocess.run([plugin], input=request.SerializeToString(), capture_output=True, check=True)
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    if response.error or len(response.file) != 1:
        raise RuntimeError(f"{SWAGGER_PLUGIN} failed: {response.error or [f.name for f in response.file]}")
    document: dict[str, Any] = json.loads(response.file[0].content)
    return document


def _error_definitions() -> dict[str, Any]:
    """google.rpc.Status and Any as the transcoder prints them (proto field names)."""
    return {
        ERROR_SCHEMA: {
            "type": "object",
            "description": "google.rpc.Status: the gRPC code, a message for developers, and typed details.",
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
                "message": {"type": "string", "description": "What went wrong, in English."},
                "details": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/protobufAny"},
                    "description": "google.rpc.ErrorInfo (reason, domain `parley`), BadRequest, RetryInfo.",
                },
            },
        },
        "protobufAny": {
            "type": "object",
            "description": "A detail message, named by its `@type` URL, with that type's fields beside it.",
            "properties": {"@type": {"type": "string"}},
            "additionalProperties": {},
        },
    }


def _query_parameters(files: descriptor_pb2.FileDescriptorSet) -> dict[str, list[dict[str, Any]]]:
    """Query parameters of the rules whose body is one field (`PATCH ... body: "conversation"`):
    the request's other fields, e.g. update_mask, which the plugin lists only for rules
    without a body. By operation id (Service_Method)."""
    catalogue = apidocs.Catalogue(files)
    found: dict[str, list[dict[str, Any]]] = {}
    for _, service in catalogue.services():
        for method in service.method:
            mapped = rpcs.options_http_rule(method.options)
            if mapped is None or mapped[2].body in ("", "*"):
                continue
            _, path, rule = mapped
            in_path = {name.split(".")[0] for name in re.findall(r"\{([\w.]+)\}", path)}
            found[f"{service.name}_{method.name}"] = [
                {
                    "name": field.name,
                    "in": "query",
                    "required": False,
                    "type": QUERY_TYPES[field.type_name or field.type],
                    "description": catalogue.comment(method.input_type, field.name),
                }
                for field in catalogue.messages[method.input_type].field
                if field.name not in in_path | {rule.body}
            ]
    return found


def _finish(document: dict[str, Any], files: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """What the plugin leaves out: title, bearer scheme, error body, stream framing, unique operation ids,
    and the query parameters beside a one-field body."""
    document["info"] = {"title": "Parley REST API", "version": "v1", "description": DESCRIPTION}
    document["securityDefinitions"] = {
        "bearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Bearer <access token>` from AuthService.Login, or `Bearer pk_...` (an API key).",
        }
    }
    document["security"] = [{"bearer": []}]
    document["definitions"].update(_error_definitions())
    query_parameters = _query_parameters(files)
    for operations in document["paths"].values():
        for operation in operations.values():
            service = operation["tags"][0]
            operation["operationId"] = f"{service}_{operation['operationId']}"
            if operation["operationId"] in query_parameters:
                operation["parameters"] += query_parameters[operation["operationId"]]
            responses = operation["responses"]
            if "(streaming responses)" in responses["200"]["description"]:
                responses["200"]["description"] = STREAM_DESCRIPTION
            responses["default"] = {
                "description": "An error: the HTTP status of its gRPC code, and google.rpc.Status.",
                "schema": {"$ref": f"#/definitions/{ERROR_SCHEMA}"},
            }
    return document


def openapi_document(plugin: str, files: descriptor_pb2.FileDescriptorSet) -> str:
    """The OpenAPI document of every RPC with an http rule, as committed (JSON, two-space indent)."""
    return json.dumps(_finish(_run_plugin(plugin, files), files), indent=2, ensure_ascii=False) + "\n"


def write_or_compare(path: Path, fresh: bytes, check: bool, regenerate_hint: str) -> int:
    """Write fresh to path, or (check) exit status 1 with a hint when the committed file differs."""
    if check:
        if not path.exists() or path.read_bytes() != fresh:
            print(f"{path.name} is stale; {regenerate_hint}")
            return 1
        print(f"{path.name} is up to date")
        return 0
    path.write_bytes(fresh)
    print(f"regenerated {path}")
    return 0
