"""The test suite's own layout: test modules share code only through tests/helpers.

A test module that imports another one drags that module's tests and
fixtures along (pytest then runs them twice, or a fixture is found by
accident); importing conftest bypasses pytest's fixture lookup. What tests
share is a helper in tests/helpers or a fixture in a conftest, so neither
import is ever needed. (import-linter cannot say this: its module patterns
match whole name parts, not "test_*".)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a file under the tests package at root ("tests.chat.test_chat")."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module path imports, anywhere in the file;
    for `from a import b`, both a and a.b, since b may be a module."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def is_test_module_or_conftest(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def forbidden_imports(root: Path) -> list[str]:
    """Every import, in a file under root, of a test module or a conftest."""
    return [
        f"{path.relative_to(root.parent)}:{line}: imports {name}"
        for path in sorted(root.rglob("*.py"))
        for line, name in imported_names(path, root)
        if is_test_module_or_conftest(name)
    ]


def test_no_test_module_imports_another_or_conftest() -> None:
    assert forbidden_imports(TESTS) == []


def test_the_check_sees_each_way_of_writing_such_an_import(tmp_path: Path) -> None:
    """The check above would pass vacuously if it missed a spelling: try them all."""
    root = tmp_path / "tests"
    (root / "chat").mkdir(parents=True)
    (root / "helpers").mkdir()
    for package in (root, root / "chat", root / "helpers"):
        (package / "__init__.py").write_text("")
    (root / "chat" / "test_chat.py").write_text(
        "from tests.chat.test_chat_orphans import alice\n"  # line 1
        "from tests import conftest\n"  # line 2
        "from tests.chat import test_chat_orphans\n"  # line 3
        "import tests.conftest\n"  # line 4
        "from . import test_chat_orphans\n"  # line 5
        "from .test_chat_orphans import stranded\n"  # line 6
        "def later():\n    from tests.test_cli import served\n"  # line 8
        "from tests.helpers.chat import collect\n"  # allowed
    )
    (root / "helpers" / "chat.py").write_text("from ..chat.test_chat import kinds\n")
    (root / "chat" / "test_chat_orphans.py").write_text("from tests.helpers import chat\n")  # allowed
    found = forbidden_imports(root)
    lines = {entry.split(": imports ")[0] for entry in found}
    assert lines == {
        *(f"tests/chat/test_chat.py:{n}" for n in (1, 2, 3, 4, 5, 6, 8)),
        "tests/helpers/chat.py:1",
    }, found
