"""The wheel works anywhere: built from this checkout, installed into a fresh
virtual environment, and served from a directory outside the checkout.

Besides Python code, `parley serve` needs two files at run time: the Envoy
config template and the web page bundled by hatch_build.py. Both are package
data; these tests fail if the wheel lacks either, or if the code looked for
them in the checkout. pip may use PyPI and its cache (30-50 s here, most of
it installing the dependencies into the fresh environment).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import grpc
import pytest

from parley.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers.accounts import PASSWORD
from tests.helpers.grpc_web import GRPC_WEB, http
from tests.helpers.repo import REPO_ROOT
from tests.helpers.served import start

PACKAGE_DATA = {
    "parley_server/bridge/envoy.yaml",
    "parley_server/bridge/static/index.html",
    "parley_server/bridge/static/app.js",
    "parley_server/bridge/static/app.css",
}


def run(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of this checkout: the real build, hatch_build.py included."""
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, REPO_ROOT)
    (built,) = out.glob("parley-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies; its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    return venv / "bin"


def test_wheel_carries_the_envoy_template_and_the_page(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert PACKAGE_DATA <= names, sorted(PACKAGE_DATA - names)


def test_installed_wheel_serves_grpc_grpc_web_and_the_page_from_elsewhere(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run(installed / "python", "-c", "import parley_server; print(parley_server.__file__)", cwd=elsewhere)
    assert Path(located.strip()).is_relative_to(installed.parent), f"imported from {located}, not the installed wheel"
    served = start(tmp_path, parley=installed / "parley", cwd=elsewhere)
    try:
        with grpc.insecure_channel(served.addr) as channel:
            auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(email="wheel@example.com", password=PASSWORD), timeout=30
            )
        request = auth_pb2.LoginRequest(email="wheel@example.com", password=PASSWORD).SerializeToString()
        status, headers, body = http(
            f"{served.web_url}/parley.auth.v1.AuthService/Login",
            method="POST",
            headers=GRPC_WEB,
            body=b"\x00" + len(request).to_bytes(4, "big") + request,
        )
        assert status == 200 and headers["content-type"].startswith("application/grpc-web"), (status, headers)
        assert body[0] == 0, f"expected a data frame, got {body!r}"
        login = auth_pb2.LoginResponse.FromString(body[5 : 5 + int.from_bytes(body[1:5], "big")])
        assert login.user.email == "wheel@example.com" and login.tokens.access_token
        status, headers, page = http(served.web_url + "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"<title>Parley</title>" in page and b'src="/app.js"' in page
        status, headers, _ = http(served.web_url + "/app.js")
        assert status == 200 and headers["content-type"].startswith("application/javascript")
    finally:
        code = served.stop()
    assert code == 0, served.log_tail()
