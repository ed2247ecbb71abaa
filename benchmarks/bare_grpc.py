"""Bare grpc.aio servers: what grpc.aio itself costs, with no Parley code at all.

Two baselines, each one process (run several on one port for --workers N:
they listen with SO_REUSEPORT, as `parley serve --workers` does), on the
event loop Parley runs on (uvloop when installed):

- `health`: the standard grpc.health.v1 Check and nothing else: no
  interceptor, no authentication, no database. The ceiling any unary RPC of
  a grpc.aio server on this machine can reach (scripts/bench_unary.py).
- `chat`: parley.chat.v1.ChatService/SendMessage answering like Parley's
  echo provider, on its schedule: `accepted` (with the user message), one
  delta per word (word k due at start + (k + 1) * delay), usage, then
  `completed` with the whole message. The same messages a chat client gets
  from Parley, with no authentication, no database and no fan-out
  (scripts/bench_chat.py). `--busy-start-us` and `--busy-delta-us` give it
  work to do (a busy-wait) before `accepted` and before each delta: how its
  burst intake responds to costlier calls is the yardstick for Parley's
  start and per-message costs (docs/performance-log.md).

    python -m benchmarks.bare_grpc health --addr 127.0.0.1:50100
    python -m benchmarks.bare_grpc chat --addr 127.0.0.1:50101 --delay-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from parley.chat.v1 import chat_pb2, chat_pb2_grpc
from parley.conversation.v1 import conversation_pb2

# What the echo provider puts before the user's words.
ECHO_PREFIX = "Echo:"
# Parley's listening socket option that matters here: several processes on one port.
OPTIONS = [("grpc.so_reuseport", 1)]


def busy(microseconds: int) -> None:
    """Hold the event loop for that long, as a server's own work on a call would."""
    if not microseconds:
        return
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


class EchoChat(chat_pb2_grpc.ChatServiceServicer):
    """SendMessage with the echo provider's words and pacing; nothing stored."""

    def __init__(self, delay_seconds: float, busy_start_us: int = 0, busy_delta_us: int = 0) -> None:
        self._delay = delay_seconds
        self._busy_start_us = busy_start_us
        self._busy_delta_us = busy_delta_us

    async def SendMessage(
        self,
        request: chat_pb2.SendMessageRequest,
        context: grpc.aio.ServicerContext[chat_pb2.SendMessageRequest, chat_pb2.SendMessageResponse],
    ) -> AsyncIterator[chat_pb2.SendMessageResponse]:
        user = conversation_pb2.Message(
            id=str(uuid.uuid4()),
            conversation_id=request.conversation_id,
            role=conversation_pb2.MESSAGE_ROLE_USER,
            content=request.content,
            state=conversation_pb2.MESSAGE_STATE_COMPLETE,
            create_time=now(),
            update_time=now(),
        )
        assistant_id = str(uuid.uuid4())
        busy(self._busy_start_us)
        yield chat_pb2.SendMessageResponse(
            accepted=chat_pb2.GenerationAccepted(user_message=user, assistant_message_id=assistant_id)
        )
        words = [ECHO_PREFIX, *request.content.split()]
        loop = asyncio.get_running_loop()
        started = loop.time()
        offset = 0
        for index, word in enumerate(words):
            await asyncio.sleep(max(0.0, started + (index + 1) * self._delay - loop.time()))
            text = word if index == len(words) - 1 else word + " "
            busy(self._busy_delta_us)
            yield chat_pb2.SendMessageResponse(delta=chat_pb2.GenerationDelta(text=text, offset=offset))
            offset += len(text)
        usage = conversation_pb2.TokenUsage(
            prompt_tokens=len(words) - 1, completion_tokens=len(words), total_tokens=2 * len(words) - 1
        )
        yield chat_pb2.SendMessageResponse(usage=chat_pb2.GenerationUsage(usage=usage))
        answer = conversation_pb2.Message(
            id=assistant_id,
            conversation_id=request.conversation_id,
            role=conversation_pb2.MESSAGE_ROLE_ASSISTANT,
            content=" ".join(words),
            state=conversation_pb2.MESSAGE_STATE_COMPLETE,
            usage=usage,
            create_time=user.create_time,
            update_time=now(),
        )
        yield chat_pb2.SendMessageResponse(completed=chat_pb2.GenerationCompleted(message=answer))


async def serve(kind: str, addr: str, delay_ms: int, busy_start_us: int, busy_delta_us: int) -> None:
    server = grpc.aio.server(options=OPTIONS)
    # Both answer Check: it is how a benchmark knows a server is up.
    health = HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if kind == "chat":
        chat_pb2_grpc.add_ChatServiceServicer_to_server(EchoChat(delay_ms / 1000, busy_start_us, busy_delta_us), server)
    if server.add_insecure_port(addr) == 0:
        raise SystemExit(f"could not listen on {addr}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["health", "chat"])
    parser.add_argument("--addr", required=True, help="host:port to listen on")
    parser.add_argument("--delay-ms", type=int, default=30, help="chat: pause per word, as PARLEY_ECHO_DELAY_MS")
    parser.add_argument("--busy-start-us", type=int, default=0, help="chat: CPU spent (busy) before `accepted`")
    parser.add_argument("--busy-delta-us", type=int, default=0, help="chat: CPU spent (busy) before each delta")
    args = parser.parse_args()
    runner: asyncio.Runner
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve(args.kind, args.addr, args.delay_ms, args.busy_start_us, args.busy_delta_us))


if __name__ == "__main__":
    main()
