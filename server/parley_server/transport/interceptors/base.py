"""A base for interceptors that wrap a whole RPC, unary or streaming, alike.

grpc-interceptor hands `intercept` either a coroutine (a unary response, or a
stream whose handler writes with `context.write`, like the standard health
service's Watch) or an async generator (a stream that yields). Subclasses
implement one async context manager, `around`, that encloses the RPC: for a
stream it stays open until the last message is sent, so auth, error mapping
and logging see streams whole.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
from grpc_interceptor.server import AsyncServerInterceptor


class AroundInterceptor(AsyncServerInterceptor, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def around(
        self, context: grpc.aio.ServicerContext[Any, Any], method_name: str
    ) -> AbstractAsyncContextManager[None]:
        """Entered before the handler runs, exited after its last response."""

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        try:
            response = method(request_or_iterator, context)
        except Exception as exc:
            # A synchronous handler (the generated base servicer of an RPC with
            # no implementation yet) fails as soon as it is called, before any
            # `around` is entered; re-raise inside it so authentication still
            # runs first and the error is mapped like any other.
            response = _raise(exc)
        if hasattr(response, "__aiter__"):
            return self._stream(response, context, method_name)
        try:
            async with self.around(context, method_name):
                return await response
        finally:
            response.close()  # no-op once awaited; avoids a never-awaited warning otherwise

    async def _stream(
        self, responses: AsyncGenerator[Any, None], context: grpc.aio.ServicerContext[Any, Any], method_name: str
    ) -> AsyncIterator[Any]:
        try:
            async with self.around(context, method_name):
                async for item in responses:
                    yield item
        finally:
            await responses.aclose()


class AroundChain(AroundInterceptor):
    """Several AroundInterceptors as one, the first outermost.

    Same nesting as registering them one by one, but a streamed message
    passes through one wrapping generator instead of two per interceptor:
    with a thousand streams, those hops were a measurable share of the CPU.
    """

    def __init__(self, *parts: AroundInterceptor) -> None:
        self._parts = parts

    @asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any], method_name: str) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for part in self._parts:
                await stack.enter_async_context(part.around(context, method_name))
            yield


async def _raise(exc: Exception) -> Any:
    raise exc
