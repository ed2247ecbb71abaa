"""Envoy, the gRPC-web bridge: its rendered config, the page server, and how
`parley serve` supervises it (start, stop, Envoy dying, Envoy not starting).

The config is checked by Envoy itself (`envoy --mode validate`); the bridge
is exercised with real grpc-web requests over HTTP/1.1, as browsers send them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from parley_server import cli
from parley_server.bridge import web
from parley_server.bridge.envoy import (
    EnvoyError,
    EnvoyProcess,
    envoy_command,
)
from parley_server.bridge.envoy_config import TEMPLATE_PATH, addresses, default_origins, render
from parley_server.bridge.web import WebServer
from parley_server.settings import ConfigError, Settings
from tests.helpers.envoy import validate
from tests.helpers.grpc_web import EMPTY_FRAME, GRPC_WEB, RunningBridge, http
from tests.helpers.served import BIN, free_port, serve_env, start

# --- the config --------------------------------------------------------------


def test_rendered_default_config_validates(tmp_path: Path) -> None:
    settings = Settings.from_env({"PARLEY_DATA_DIR": str(tmp_path)})
    text = render(addresses(settings, grpc_port=50051, web_port=41000))
    assert "${" not in text, "every placeholder is substituted"
    result = validate(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "deprecated" not in (result.stdout + result.stderr).lower()


def test_rendered_custom_config_validates(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PARLEY_DATA_DIR": str(tmp_path),
            "PARLEY_GRPC_ADDR": "0.0.0.0:6000",
            "PARLEY_ENVOY_ADDR": "0.0.0.0:8443",
            "PARLEY_ENVOY_ADMIN_ADDR": "localhost:9999",
            "PARLEY_ALLOWED_ORIGINS": "https://chat.example.com, http://localhost:5173/",
        }
    )
    addrs = addresses(settings, grpc_port=6000, web_port=41001)
    assert addrs.listen == ("0.0.0.0", 8443)
    assert addrs.grpc == ("127.0.0.1", 6000), "a wildcard gRPC address is reached over loopback"
    assert addrs.admin == ("127.0.0.1", 9999)
    assert addrs.allowed_origins == ("https://chat.example.com", "http://localhost:5173")
    text = render(addrs)
    assert '{"exact": "https://chat.example.com"}' in text
    result = validate(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_has_the_bridge_essentials() -> None:
    """What FACTS.md says breaks browsers when missing: keep it in the template."""
    template = TEMPLATE_PATH.read_text()
    for needle in [
        "codec_type: AUTO",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "stream_idle_timeout: 0s",
        "request_timeout: 0s",
        "timeout: 0s",
        "grpc_timeout_header_max: 0s",
        'expose_headers: "grpc-status, grpc-message, grpc-status-details-bin"',
        "grpc_health_check",
        "http2_protocol_options",
        "convert_grpc_status: true",
        "stream_newline_delimited: true",
        "auto_mapping: false",
        "local_reply_config",
    ]:
        assert needle in template, needle
    # Filter order: grpc_web (gRPC-web becomes gRPC, which the transcoder passes),
    # then cors (it sees REST requests before they are rerouted as gRPC, so even the
    # transcoder's own errors carry CORS headers), the transcoder, the router.
    names = ("grpc_web", "cors", "grpc_json_transcoder", "router")
    order = [template.index(f"name: envoy.filters.http.{name}") for name in names]
    assert order == sorted(order)
    for header in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "x-request-id"]:
        assert header in template.split("allow_headers:", 1)[1].split("\n", 1)[0]


def test_default_origins_are_the_pages_own() -> None:
    assert default_origins("127.0.0.1:8080", "http://127.0.0.1:8080") == (
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    )
    assert default_origins("0.0.0.0:9000", "https://chat.example.com/app") == (
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "https://chat.example.com",
    )
    assert default_origins("10.1.2.3:80", "http://10.1.2.3") == ("http://10.1.2.3:80", "http://10.1.2.3")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PARLEY_ENVOY_ADDR", "8080", "host:port"),
        ("PARLEY_ENVOY_ADDR", "localhost:http", "host:port"),
        ("PARLEY_ENVOY_ADMIN_ADDR", "0.0.0.0:9901", "loopback"),
        ("PARLEY_ALLOWED_ORIGINS", "chat.example.com", "origins like"),
        ("PARLEY_ALLOWED_ORIGINS", "https://chat.example.com/path", "origins like"),
    ],
)
def test_bad_envoy_settings_are_config_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_envoy_runs_without_hot_restart_and_dies_with_parley(tmp_path: Path) -> None:
    command = envoy_command(tmp_path / "envoy.yaml")
    assert "--disable-hot-restart" in command, "several Envoys on one machine must not share a hot-restart socket"
    if os.path.exists("/usr/bin/setpriv"):
        assert command[:4] == ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--"]


# --- the page server ------------------------------------------------------------


@pytest.fixture
def page_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp_path / "app.js").write_text("console.log('x'.repeat(2000))")
    return tmp_path


async def test_web_server_serves_files_and_the_page_for_app_paths(page_dir: Path) -> None:
    web = WebServer(page_dir)
    web.start()
    try:
        base = f"http://127.0.0.1:{web.port}"
        status, headers, body = await asyncio.to_thread(http, base + "/")
        assert status == 200 and b"<title>page</title>" in body
        assert headers["cache-control"] == "no-cache"
        status, headers, _ = await asyncio.to_thread(http, base + "/app.js")
        assert status == 200 and headers["content-type"].startswith("application/javascript")
        status, _, body = await asyncio.to_thread(http, base + "/verify?token=abc")
        assert status == 200 and b"<title>page</title>" in body, "the emailed link opens the page"
        assert (await asyncio.to_thread(http, base + "/missing.js"))[0] == 404
        assert (await asyncio.to_thread(http, base + "/../../etc/passwd"))[0] in (200, 404)
        assert b"root:" not in (await asyncio.to_thread(http, base + "/../../etc/passwd"))[2]
        assert (await asyncio.to_thread(http, base + "/", method="OPTIONS"))[0] == 204
        # A REST path Envoy did not transcode: a JSON 404 for any verb, never the page.
        for method in ("GET", "POST", "PATCH", "DELETE"):
            status, headers, body = await asyncio.to_thread(http, base + "/v1/nothing", method=method, body=b"{}")
            assert (status, headers["content-type"]) == (404, "application/json"), method
            assert json.loads(body)["code"] == 5
        assert (await asyncio.to_thread(http, base + "/", method="POST", body=b"x"))[0] == 501
        status, headers, body = await asyncio.to_thread(http, base + "/openapi.json")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body)["swagger"] == "2.0"
    finally:
        await web.stop()


def test_serve_refuses_to_start_without_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken installation says so in one sentence, before touching the database
    (an unreachable one here: without the check, serve fails fast on it instead)."""
    monkeypatch.setattr(web, "PAGE_DIR", tmp_path / "static")
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert cli.main(["serve"]) == 1
    error = capsys.readouterr().err
    assert "the web page is missing from this installation" in error and "--no-envoy" in error
    assert not (tmp_path / "data").exists()


async def test_grpc_web_error_is_readable_cross_origin(bridge: RunningBridge) -> None:
    """A trailers-only UNAUTHENTICATED answer with the headers a browser may read."""
    origin = bridge.url.replace("127.0.0.1", "localhost")
    status, headers, _ = await asyncio.to_thread(
        http,
        bridge.url + "/parley.auth.v1.AuthService/GetCurrentUser",
        method="POST",
        headers={**GRPC_WEB, "origin": origin, "authorization": "Bearer nonsense"},
        body=EMPTY_FRAME,
    )
    assert status == 200
    assert headers["grpc-status"] == "16"
    assert headers["access-control-allow-origin"] == origin
    exposed = {h.strip() for h in headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
    details = base64.b64decode(headers["grpc-status-details-bin"] + "==")
    assert b"TOKEN_INVALID" in details and b"parley" in details


async def test_grpc_web_success_and_health_through_envoy(bridge: RunningBridge) -> None:
    status, headers, body = await asyncio.to_thread(
        http, bridge.url + "/grpc.health.v1.Health/Check", method="POST", headers=GRPC_WEB, body=EMPTY_FRAME
    )
    assert status == 200 and headers["content-type"].startswith("application/grpc-web")
    # A data frame (flag 0) with status SERVING (field 1 = 1), then the trailer frame (flag 0x80).
    assert body[:7] == b"\x00\x00\x00\x00\x02\x08\x01"
    assert body[7] == 0x80 and b"grpc-status:0" in body


async def test_cors_preflight_only_for_allowed_origins(bridge: RunningBridge) -> None:
    path = bridge.url + "/parley.chat.v1.ChatService/SendMessage"
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization,x-grpc-web"}
    allowed = bridge.url.replace("127.0.0.1", "localhost")
    status, headers, _ = await asyncio.to_thread(http, path, method="OPTIONS", headers={**preflight, "origin": allowed})
    assert status == 200 and headers["access-control-allow-origin"] == allowed
    assert "authorization" in headers["access-control-allow-headers"]
    status, headers, _ = await asyncio.to_thread(
        http, path, method="OPTIONS", headers={**preflight, "origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in headers, "an unknown origin gets no CORS grant"


async def test_page_is_served_through_envoy(bridge: RunningBridge) -> None:
    """The installed page (the install bundles it), not Envoy's own 404/503."""
    status, headers, body = await asyncio.to_thread(http, bridge.url + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<title>Parley</title>" in body and b'src="/app.js"' in body
    status, headers, _ = await asyncio.to_thread(http, bridge.url + "/app.js")
    assert status == 200 and headers["content-type"].startswith("application/javascript")


async def test_envoy_dying_stops_serving_with_exit_code_1(
    bridge: RunningBridge, caplog: pytest.LogCaptureFixture
) -> None:
    os.kill(_pid_running(bridge.config), signal.SIGKILL)
    assert await asyncio.wait_for(bridge.task, 30) == 1
    assert "Envoy exited unexpectedly" in caplog.text


def _pid_running(config: Path) -> int:
    """The pid of the Envoy started with this config file."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in argv and any(arg.endswith(b"envoy") for arg in argv[:1]):
            return int(proc.name)
    raise AssertionError(f"no Envoy running with {config}")


async def test_envoy_process_reports_a_failed_start(tmp_path: Path) -> None:
    bad = tmp_path / "envoy.yaml"
    bad.write_text("static_resources: {listeners: [{name: x}]}\n")
    proxy = EnvoyProcess(bad, f"127.0.0.1:{free_port()}")
    with pytest.raises(EnvoyError, match="Envoy exited with code"):
        await proxy.start(timeout=20)


# --- `parley serve` as a process ------------------------------------------------------


def test_serve_no_envoy_runs_grpc_alone(tmp_path: Path) -> None:
    served = start(tmp_path, envoy=False)
    try:
        envoy_port = int(served.envoy_addr.rsplit(":", 1)[1])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", envoy_port)) != 0, "nothing listens on the Envoy address"
        assert "Envoy" not in served.log_tail()
    finally:
        assert served.stop() == 0


def test_serve_fails_cleanly_when_envoy_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [str(BIN / "parley"), "serve"],
                env=serve_env(tmp_path, PARLEY_ENVOY_ADDR=f"127.0.0.1:{port}"),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
    text = log.read_text()
    assert result.returncode == 1, text
    assert "Envoy could not start" in text and "shutting down" in text


def test_serve_exits_nonzero_when_envoy_dies(tmp_path: Path) -> None:
    served = start(tmp_path)
    match = re.search(r"Envoy \(pid (\d+)\)", served.log.read_text())
    assert match, served.log_tail()
    os.kill(int(match.group(1)), signal.SIGKILL)
    served.process.wait(timeout=60)
    assert served.stop() == 1
    text = served.log.read_text()
    assert "Envoy exited unexpectedly (code -9)" in text
    assert "shutting down" in text


def test_serve_sigterm_stops_envoy_too(tmp_path: Path) -> None:
    served = start(tmp_path)
    match = re.search(r"Envoy \(pid (\d+)\)", served.log.read_text())
    assert match, served.log_tail()
    assert served.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)
