"""A small static-file server for the web page, behind Envoy.

Envoy routes everything that is not a gRPC path here, so the page and its
gRPC-web calls share one origin. It is the standard library's threading HTTP
server on loopback: the page is three files, and the process already runs;
a separate web server or Envoy's file serving would be one more thing to set up.

The page is package data (`parley_server/bridge/static`, bundled from clients/web
when Parley is built, see hatch_build.py), so a checkout and an installed
wheel serve it from the same place. An installation without it is broken:
`parley serve` refuses to start, saying so (`check_page`), rather than
serving a bridge with no page.

Paths without a file extension that match no file (`/verify?token=...` from
the verification email, `/reset-password?...`) get index.html, so the page
can read its own URL.

The REST API's documents live here too: `/openapi.json` (generated from the
protos by scripts/codegen.py, package data beside this module) and the page
that renders it, `/docs` (`docs.html`, bundled with the chat page). A REST
path (`/v1/...`) reaches this server only when Envoy's transcoder found no
`google.api.http` rule for its path and verb: it gets a JSON 404, as a
google.rpc.Status like every other REST error, never the page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).with_name("static")
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
REST_PREFIX = "/v1/"
# Pages served under a name without their extension.
ALIASES = {"/docs": "/docs.html"}
NO_REST_METHOD = json.dumps(
    {"code": 5, "message": "no REST method has this path and verb: see /openapi.json or /docs", "details": []}
).encode()


def check_page(root: Path) -> None:
    """Raise FileNotFoundError, in one sentence, when root holds no built page."""
    if not (root / "index.html").is_file():
        raise FileNotFoundError(
            f"the web page is missing from this installation ({root / 'index.html'}): "
            "reinstall Parley (its build bundles the page), or serve gRPC alone with --no-envoy"
        )


class _PageHandler(SimpleHTTPRequestHandler):
    """Serves the dist directory; index.html for unknown extension-less paths."""

    server_version = "parley-web"
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        # application/javascript: Envoy's compressor gzips it by default.
        ".js": "application/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".html": "text/html; charset=utf-8",
        ".map": "application/json",
    }

    def _route_path(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def translate_path(self, path: str) -> str:
        if path.split("?", 1)[0] == "/openapi.json":
            return str(OPENAPI_PATH)
        return super().translate_path(path)

    def send_head(self) -> Any:
        path = self._route_path()
        if path.startswith(REST_PREFIX):
            self._no_rest_method()
            return None
        if path in ALIASES:
            self.path = path = ALIASES[path]
        if path.endswith("/") and path != "/":
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        target = Path(self.translate_path(path))
        if not target.exists() and "." not in path.rsplit("/", 1)[-1]:
            self.path = "/index.html"
        return super().send_head()

    def _no_rest_method(self) -> None:
        """A JSON 404 for a REST path that no http rule maps (for any verb)."""
        self.send_response(HTTPStatus.NOT_FOUND)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(NO_REST_METHOD)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(NO_REST_METHOD)

    def _write_method(self) -> None:
        """POST, PUT, PATCH, DELETE: only REST paths get them, and only when Envoy did not transcode."""
        if self._route_path().startswith(REST_PREFIX):
            self._no_rest_method()
        else:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED)

    do_POST = do_PUT = do_PATCH = do_DELETE = _write_method

    def do_OPTIONS(self) -> None:
        """A preflight the CORS filter did not answer (origin not allowed): no CORS headers."""
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def end_headers(self) -> None:
        # The bundle's name does not change between builds: always revalidate.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def list_directory(self, path: Any) -> None:
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web %s " + format, self.address_string(), *args)


class WebServer:
    """The static-file server on 127.0.0.1 and an ephemeral port, in one thread."""

    def __init__(self, root: Path = PAGE_DIR) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_PageHandler, directory=str(root)))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="parley-web", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """Stop serving; shutdown() blocks until the serving loop notices, so off the loop."""
        if self._thread.is_alive():
            await asyncio.to_thread(self._httpd.shutdown)
        self._httpd.server_close()
