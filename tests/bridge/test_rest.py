"""REST/JSON through the real Envoy: curl against `parley serve` on a real PostgreSQL.

Envoy's gRPC-JSON transcoder turns each request whose path and verb match a
`google.api.http` rule into the RPC, on the port of the page and gRPC-web;
these tests drive it the way a script would, with the curl binary, and read
what a caller sees: HTTP status, JSON bodies, streamed lines, CORS headers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from openapi_spec_validator import validate

from parley.client import rpcs
from tests.helpers.accounts import PASSWORD
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import BIN, Served, start_served

JWT_SECRET = "rest-test-secret-" + "x" * 32
ALLOWED_ORIGIN = "https://chat.example.com"
# Slow enough that a streamed answer visibly arrives in pieces.
ECHO_DELAY_MS = 150


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`parley serve` with Envoy, a JWT secret the tests know, and one extra allowed origin."""
    yield from start_served(
        tmp_path_factory.mktemp("rest"),
        PARLEY_JWT_SECRET=JWT_SECRET,
        PARLEY_ECHO_DELAY_MS=str(ECHO_DELAY_MS),
        PARLEY_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
    )


@dataclass
class Reply:
    """One HTTP answer as curl saw it."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def curl(served: Served, method: str, path: str, *, data: object = None, token: str = "", **headers: str) -> Reply:
    """One request with the curl binary; headers given as keyword arguments (underscores become dashes)."""
    command = ["curl", "-sS", "-i", "-X", method, f"{served.web_url}{path}"]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    for name, value in headers.items():
        command += ["-H", f"{name.replace('_', '-')}: {value}"]
    if data is not None:
        command += ["-H", "content-type: application/json", "--data-binary", json.dumps(data)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    # Text mode reads curl's CRLF lines as "\n" ones.
    head, _, body = result.stdout.partition("\n\n")
    status_line, *lines = head.split("\n")
    fields = (line.split(":", 1) for line in lines)
    return Reply(int(status_line.split()[1]), {k.strip().lower(): v.strip() for k, v in fields}, body)


def login(served: Served, email: str) -> str:
    """Register, verify (the token from the development outbox) and log in over REST; the access token."""
    registered = curl(served, "POST", "/v1/auth:register", data={"email": email, "password": PASSWORD})
    assert registered.status == 200, registered.body
    outbox = served.parley("outbox", "--to", email, "-n", "1")
    token = re.search(r"token=([\w-]+)", outbox.stdout)
    assert token, outbox.stdout + outbox.stderr
    verified = curl(served, "POST", "/v1/auth:verifyEmail", data={"token": token.group(1)})
    assert verified.json()["user"]["state"] == "USER_STATE_ACTIVE"
    logged_in = curl(served, "POST", "/v1/auth:login", data={"email": email, "password": PASSWORD})
    assert logged_in.status == 200, logged_in.body
    return str(logged_in.json()["tokens"]["access_token"])


def new_conversation(served: Served, token: str) -> str:
    agents = curl(served, "GET", "/v1/agents", token=token).json()["agents"]
    created = curl(served, "POST", "/v1/conversations", data={"agent_id": agents[0]["id"]}, token=token)
    assert created.status == 200, created.body
    return str(created.json()["conversation"]["id"])


def reasons(reply: Reply) -> list[str]:
    return [d["reason"] for d in reply.json()["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]


@pytest.fixture(scope="module")
def ada(served: Served) -> str:
    return login(served, "ada.rest@example.com")


def test_chat_streams_newline_delimited_json_and_reads_back(served: Served, ada: str) -> None:
    conversation = new_conversation(served, ada)
    command = [
        "curl", "-sS", "-N", "-X", "POST",
        f"{served.web_url}/v1/conversations/{conversation}:sendMessage",
        "-H", f"authorization: Bearer {ada}",
        "--data-binary", json.dumps({"content": "one two three four five"}),
    ]  # fmt: skip
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            arrivals.append((time.monotonic(), json.loads(line)))
    assert process.returncode == 0
    kinds = [next(iter(event)) for _, event in arrivals]
    assert kinds[0] == "accepted" and kinds[-1] == "completed" and "delta" in kinds, kinds
    text = "".join(event["delta"]["text"] for _, event in arrivals if "delta" in event)
    assert text == "Echo: one two three four five"
    # Each line came as it happened, not all at the end.
    first_delta = next(at for at, event in arrivals if "delta" in event)
    assert arrivals[-1][0] - first_delta > 3 * ECHO_DELAY_MS / 1000

    listed = curl(served, "GET", f"/v1/conversations/{conversation}/messages", token=ada)
    assert listed.status == 200
    messages = listed.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("MESSAGE_ROLE_USER", "one two three four five"),
        ("MESSAGE_ROLE_ASSISTANT", "Echo: one two three four five"),
    ]
    assert messages[1]["state"] == "MESSAGE_STATE_COMPLETE"


def test_patch_takes_the_update_mask_from_the_query(served: Served, ada: str) -> None:
    conversation = new_conversation(served, ada)
    patched = curl(
        served,
        "PATCH",
        f"/v1/conversations/{conversation}?update_mask=title,pinned",
        data={"title": "Trip to Lisbon", "pinned": True, "archived": True},
        token=ada,
    )
    assert patched.status == 200, patched.body
    got = curl(served, "GET", f"/v1/conversations/{conversation}", token=ada).json()["conversation"]
    assert (got["title"], got["pinned"], got["archived"]) == ("Trip to Lisbon", True, False)


def test_bad_id_is_400_with_field_violations(served: Served, ada: str) -> None:
    reply = curl(served, "GET", "/v1/conversations/not-a-uuid", token=ada)
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/json"
    status = reply.json()
    assert status["code"] == 3 and "conversation_id" in status["message"]
    assert reasons(reply) == ["INVALID_ARGUMENT"]
    bad_request = next(d for d in status["details"] if d["@type"].endswith("google.rpc.BadRequest"))
    assert bad_request["field_violations"] == [
        {"field": "conversation_id", "description": "must be a UUID", "reason": ""}
    ]


def test_envoys_own_rejections_are_json_400(served: Served, ada: str) -> None:
    unknown_parameter = curl(served, "GET", "/v1/conversations?colour=red", token=ada)
    not_json = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "-H", f"authorization: Bearer {ada}", "--json", "{oops",
         f"{served.web_url}/v1/conversations"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    body, _, status = not_json.stdout.rpartition("\n")
    assert unknown_parameter.status == 400 and status == "400"
    for error in (unknown_parameter.json(), json.loads(body)):
        assert error["code"] == 3 and error["details"] == [] and error["message"], error
    assert "colour" in unknown_parameter.json()["message"]


def test_expired_token_is_401(served: Served, ada: str) -> None:
    claims = jwt.decode(ada, options={"verify_signature": False})
    now = int(time.time())
    expired = jwt.encode({**claims, "iat": now - 3600, "exp": now - 60}, JWT_SECRET, algorithm="HS256")
    reply = curl(served, "GET", "/v1/users/me", token=expired)
    assert reply.status == 401
    assert reply.json()["code"] == 16 and reasons(reply) == ["TOKEN_EXPIRED"]
    assert curl(served, "GET", "/v1/users/me").status == 401
    assert curl(served, "GET", "/v1/users/me", token=ada).json()["user"]["email"] == "ada.rest@example.com"


def test_an_api_key_is_a_bearer_too(served: Served, ada: str) -> None:
    created = curl(served, "POST", "/v1/apiKeys", data={"name": "script", "scopes": ["SCOPE_READ"]}, token=ada)
    assert created.status == 200, created.body
    key = created.json()["secret"]
    assert curl(served, "GET", "/v1/conversations?page_size=1", token=key).status == 200
    refused = curl(served, "POST", "/v1/conversations", data={"agent_id": "x"}, token=key)
    assert refused.status == 403 and reasons(refused) == ["SCOPE_REQUIRED"]


def test_another_users_conversation_is_404_and_stays(served: Served, ada: str) -> None:
    conversation = new_conversation(served, ada)
    bob = login(served, "bob.rest@example.com")
    for method, path in [
        ("GET", f"/v1/conversations/{conversation}"),
        ("GET", f"/v1/conversations/{conversation}/messages"),
        ("DELETE", f"/v1/conversations/{conversation}"),
        ("POST", f"/v1/conversations/{conversation}:sendMessage"),
    ]:
        reply = curl(served, method, path, data={"content": "hi"} if method == "POST" else None, token=bob)
        assert reply.status == 404, (method, path, reply.body)
        assert reasons(reply) == ["CONVERSATION_NOT_FOUND"]
    assert curl(served, "GET", f"/v1/conversations/{conversation}", token=ada).status == 200


def test_a_path_without_a_rule_is_a_json_404(served: Served, ada: str) -> None:
    for method, path in [("GET", "/v1/nothing"), ("PUT", "/v1/conversations"), ("POST", "/v1/users/me")]:
        reply = curl(served, method, path, data={} if method != "GET" else None, token=ada)
        assert reply.status == 404, (method, path)
        assert reply.json()["code"] == 5, reply.body


def test_cors_for_the_allowed_origins_only(served: Served, ada: str) -> None:
    path = "/v1/conversations/00000000-0000-4000-8000-000000000000"
    preflight = {"access_control_request_method": "PATCH", "access_control_request_headers": "authorization"}
    allowed = curl(served, "OPTIONS", path, origin=ALLOWED_ORIGIN, **preflight)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "PATCH" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    refused = curl(served, "OPTIONS", path, origin="https://evil.example", **preflight)
    assert not any(name.startswith("access-control-") for name in refused.headers), refused.headers

    answered = curl(served, "GET", "/v1/users/me", token=ada, origin=ALLOWED_ORIGIN)
    assert answered.status == 200 and answered.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    # An error is readable cross-origin too.
    error = curl(served, "GET", path, token=ada, origin=ALLOWED_ORIGIN)
    assert error.status == 404 and error.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    elsewhere = curl(served, "GET", "/v1/users/me", token=ada, origin="https://evil.example")
    assert "access-control-allow-origin" not in elsewhere.headers


def rest_rules() -> dict[str, tuple[str, str]]:
    """operationId -> (verb, path) of every RPC with a google.api.http rule, from the stubs."""
    rules = {}
    for method in rpcs.methods():
        found = rpcs.http_rule(method)
        if found:
            rules[f"{method.containing_service.name}_{method.name}"] = found[:2]
    return rules


def test_openapi_document_is_valid_and_names_every_rpc(served: Served) -> None:
    reply = curl(served, "GET", "/openapi.json")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    validate(document)
    operations = {
        operation["operationId"]: (verb, path)
        for path, verbs in document["paths"].items()
        for verb, operation in verbs.items()
    }
    assert operations == rest_rules()
    send = document["paths"]["/v1/conversations/{conversation_id}:sendMessage"]["post"]
    assert "one JSON message per line" in send["responses"]["200"]["description"]
    assert send["responses"]["default"]["schema"] == {"$ref": "#/definitions/rpcStatus"}
    assert document["securityDefinitions"]["bearer"]["name"] == "Authorization"
    patch = document["paths"]["/v1/conversations/{conversation.id}"]["patch"]
    assert {(p["name"], p["in"]) for p in patch["parameters"]} == {
        ("conversation.id", "path"),
        ("body", "body"),
        ("update_mask", "query"),
    }


def test_docs_page_renders_the_document(served: Served) -> None:
    page = curl(served, "GET", "/docs")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "/docs.js" in page.body and "/docs.css" in page.body
    script = curl(served, "GET", "/docs.js")
    assert script.status == 200 and '"/openapi.json"' in script.body


def test_readme_curl_walkthrough_runs(served: Served) -> None:
    """The README's curl block, run verbatim by bash against Envoy."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- curl-walkthrough")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={**served.env, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(served.env["PARLEY_DATA_DIR"]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ('"accepted"', '"delta"', '"completed"', '"content":"Echo: Hello there"', '"code":5'):
        assert expected in result.stdout, expected


def test_export_delete_all_and_import_back_over_rest(served: Served) -> None:
    """Chunks are bytes, so base64 in JSON: the export streams them as lines, and the import's
    client stream is a JSON array of chunks."""
    token = login(served, "grace.rest@example.com")
    conversation = new_conversation(served, token)
    curl(served, "POST", f"/v1/conversations/{conversation}/messages", token=token,
         data={"role": "MESSAGE_ROLE_USER", "content": "Keep me"})  # fmt: skip
    exported = curl(served, "GET", "/v1/conversations:export", token=token)
    assert exported.status == 200, exported.body
    chunks = [json.loads(line)["chunk"]["data"] for line in exported.body.splitlines() if line.strip()]
    record = json.loads(b"".join(base64.b64decode(c) for c in chunks))
    assert record["id"] == conversation and record["messages"][0]["content"] == "Keep me"

    deleted = curl(served, "POST", "/v1/conversations:deleteAll", token=token, data={})
    assert deleted.json() == {"deleted_count": 1}
    imported = curl(served, "POST", "/v1/conversations:import", token=token, data=[{"data": c} for c in chunks])
    assert imported.status == 200, imported.body
    assert imported.json()["created_count"] == 1
    listed = curl(served, "GET", "/v1/conversations", token=token).json()["conversations"]
    assert [c["message_count"] for c in listed] == [1]
