"""One structured log line per RPC: method, status, duration, user, API key and its owner, request id, trace id.

The interceptor's outermost step, so it also times authentication and error
mapping, and sees the final status code that error mapping chose.

It runs on every RPC, so the line is cheap: nothing is built while INFO is
off, the method's name is JSON-encoded once per method, the line (the JSON
object json.dumps would write for the same fields) is formatted in one
f-string instead of a dict serialised per call, and where nothing else
would see a log record, none is made: the call keeps the line's fields,
and the line is made and written with the others of the next few
milliseconds (common/logs.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from parley_server.common import logs
from parley_server.transport.interceptors.request_context import RequestInfo

log = logging.getLogger("parley.rpc")

# The current trace's id; set when a traced server starts (transport/tracing.py).
# Until then, as with tracing off, the line's trace_id is null at no cost.
trace_ids: Callable[[], str | None] | None = None

# grpc.aio reports a call's code as a grpc.StatusCode or as its number.
CODE_NAMES: dict[object, str] = {
    **{code: code.name for code in grpc.StatusCode},
    **{code.value[0]: code.name for code in grpc.StatusCode},
}


def method_json(method_name: str) -> str:
    """The method's name as it appears in the line (a JSON string), made once per method."""
    return json.dumps(method_name)


def final_code(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    """The status the RPC ended with: the one set on the context (by error
    mapping or the handler), CANCELLED when the caller went away, else OK, or
    UNKNOWN for an exception that set none."""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return CODE_NAMES.get(context.code()) or ("OK" if error is None else "UNKNOWN")


def write(method: str, info: RequestInfo, code: str) -> None:
    """Log the RPC's line; `method` is its method_json(). What the line shows
    is taken now and made into the line when it is written (logs.info_later)."""
    if not log.isEnabledFor(logging.INFO):
        return
    trace_id = trace_ids() if trace_ids else None
    logs.info_later(log, _line, (method, info, code, time.perf_counter() - info.started, trace_id))


def _line(fields: tuple[str, RequestInfo, str, float, str | None]) -> str:
    """The line's JSON object. Ids are UUIDs, whose text needs no escaping;
    the request id is the caller's own text, so it is escaped."""
    method, info, code, seconds, trace_id = fields
    caller = info.caller
    key = caller.key if caller is not None else None
    user = "null" if caller is None else f'"{caller.user_id}"'
    principal, api_key = ("null", "null") if key is None else (f'"{key.principal_id}"', f'"{key.key_id}"')
    trace = "null" if trace_id is None else json.dumps(trace_id)
    return (
        f'{{"rpc": {method}, "code": "{code}", "ms": {round(seconds * 1000, 2)}, "user": {user}, '
        f'"principal": {principal}, "api_key": {api_key}, "request_id": {json.dumps(info.request_id)}, '
        f'"trace_id": {trace}}}'
    )
