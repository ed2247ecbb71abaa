"""A local, fake OpenAI-compatible Chat Completions server for provider tests.

It speaks HTTP/1.1 by hand over asyncio streams (no web framework needed) and
answers POST .../chat/completions in the real streaming wire format: a chunked
`text/event-stream` body of `data: {chat.completion.chunk}` events, a final
usage chunk, then `data: [DONE]`. Attributes select misbehaviours: an error
status with an OpenAI-style JSON error body, slow tokens, a connection dropped
mid-stream, a body that ends without finishing, an error event in the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """Configure the attributes, then `async with FakeOpenAI() as fake:` and use fake.base_url."""

    words: list[str] = field(default_factory=lambda: ["Hello", "from", "the", "fake"])
    # Anything but 200 answers with an error body instead of a stream.
    status: int = 200
    # Seconds to wait before each content chunk.
    token_delay: float = 0.0
    # Abort the TCP connection after this many content chunks.
    drop_after: int | None = None
    # End the body cleanly after the content, with no finish_reason, usage or [DONE].
    truncate: bool = False
    # Send an `error` event after the content instead of finishing.
    error_event: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    # Set when a client went away before the answer was complete.
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await _read_request(reader)
            self.requests.append(request)
            if request.method != "POST" or not request.path.endswith("/chat/completions"):
                await _send_json(writer, 404, _error_body("unknown path", "invalid_request_error"))
            elif self.status != 200:
                error_type = ERROR_TYPES.get(self.status, "error")
                await _send_json(writer, self.status, _error_body("fake failure", error_type))
            else:
                await self._stream(reader, writer, request.body)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnected.set()
        except asyncio.CancelledError:
            pass  # the fake is shutting down with an answer still in progress
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        # The client sends nothing after its request, so EOF means it hung up.
        hangup = asyncio.ensure_future(reader.read())
        try:
            created = int(time.time())
            model = body.get("model", "")
            await _send_event(writer, _chunk(created, model, {"role": "assistant", "content": ""}))
            for index, word in enumerate(self.words):
                if self.drop_after is not None and index == self.drop_after:
                    writer.transport.abort()
                    return
                await asyncio.sleep(self.token_delay)
                if hangup.done():
                    self.disconnected.set()
                    return
                text = word if index == len(self.words) - 1 else word + " "
                await _send_event(writer, _chunk(created, model, {"content": text}))
            if self.error_event:
                await _send_event(writer, {"error": {"message": "model crashed", "type": "server_error"}})
            elif not self.truncate:
                await _send_event(writer, _chunk(created, model, {}, finish_reason="stop"))
                if body.get("stream_options", {}).get("include_usage"):
                    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                    usage = {
                        "prompt_tokens": prompt,
                        "completion_tokens": len(self.words),
                        "total_tokens": prompt + len(self.words),
                    }
                    await _send_event(writer, {**_chunk(created, model, None), "usage": usage})
                await _send_chunk(writer, b"data: [DONE]\n\n")
            await _send_chunk(writer, b"")
        finally:
            hangup.cancel()


def _chunk(created: int, model: str, delta: dict[str, str] | None, finish_reason: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }


def _error_body(message: str, error_type: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    return RecordedRequest(method, path, headers, json.loads(raw) if raw else {})


async def _send_json(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    writer.write(
        f"HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()


async def _send_event(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    await _send_chunk(writer, f"data: {json.dumps(payload)}\n\n".encode())


async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    """One HTTP/1.1 chunk; empty data is the terminating chunk."""
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()
