"""Talking gRPC-web to Envoy as a browser does: plain HTTP/1.1 requests with
grpc-web frames, and the in-process bridge the `bridge` fixture runs."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
EMPTY_FRAME = b"\x00\x00\x00\x00\x00"


@dataclasses.dataclass
class RunningBridge:
    """serve_with_envoy running in the test process (see the `bridge` fixture)."""

    url: str
    admin: str
    config: Path
    task: asyncio.Task[int]
    stop: asyncio.Event


def http(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one HTTP/1.1 request, errors included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def frame(message: bytes) -> bytes:
    """One grpc-web data frame: flag 0, big-endian length, the message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def first_frame(url: str, path: str, message: bytes) -> tuple[int, bytes]:
    """POST one grpc-web request and read only the first frame of the answer:
    a stream like Health/Watch never ends, so reading to the end would hang."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=frame(message), headers=GRPC_WEB)
        response = connection.getresponse()
        header = response.read(5)
        return response.status, header + response.read(int.from_bytes(header[1:5], "big"))
    finally:
        connection.close()
