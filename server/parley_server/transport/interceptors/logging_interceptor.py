"""One structured log line per RPC: method, status, duration, user, request id.

Outermost interceptor, so it also times auth and error mapping, and sees the
final status code that the error interceptor chose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from parley_server.transport.interceptors.base import AroundInterceptor
from parley_server.transport.interceptors.request_context import RequestInfo, current_request, incoming_request_id

log = logging.getLogger("parley.rpc")


class LoggingInterceptor(AroundInterceptor):
    @asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any], method_name: str) -> AsyncIterator[None]:
        info = RequestInfo(incoming_request_id(context))
        previous = current_request.get()
        current_request.set(info)
        started = time.perf_counter()
        code = "OK"
        try:
            yield
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code_name(context.code()) or "UNKNOWN"
            raise
        else:
            code = _code_name(context.code()) or "OK"
        finally:
            log.info(
                json.dumps(
                    {
                        "rpc": method_name,
                        "code": code,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                        "user": info.user_id,
                        "principal": info.principal_id,
                        "api_key": info.api_key_id,
                        "request_id": info.request_id,
                    }
                )
            )
            # set, not reset(token): a cancelled stream may be finalised in
            # another context, where reset() raises.
            current_request.set(previous)


def _code_name(code: object) -> str | None:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), None)
    return None
