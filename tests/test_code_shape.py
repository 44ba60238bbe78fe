"""Rules on the shape of senet_jax/ itself: no function longer than 60 lines."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "senet_jax"
MAX_FUNCTION_LINES = 60


def long_functions(root: pathlib.Path, limit: int) -> list[str]:
    """`path:line name (N lines)` for every function or method over `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_package_is_over_60_lines():
    assert long_functions(PACKAGE, MAX_FUNCTION_LINES) == []


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly `lines` lines: its def and lines - 1 statements."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}():\n{body}"


def test_the_check_finds_a_long_function_and_a_long_method(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text(_function("at_limit", 60) + "\n\n" + _function("over", 61))
    (package / "b.py").write_text("class C:\n" + _function("method", 61, indent="    "))
    assert long_functions(package, MAX_FUNCTION_LINES) == [
        "pkg/a.py:63 over (61 lines)",
        "pkg/b.py:2 method (61 lines)",
    ]
