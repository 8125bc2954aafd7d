"""The house stays livable: the layers hold, no import circles, and no module, class or
function grows past its size (counting code lines: not blank lines, comments or docstrings)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "digest"

MAX_MODULE = 400
MAX_CLASS = 250
MAX_FUNCTION = 60

Definition = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def code_lines(source: str) -> tuple[ast.Module, set[int]]:
    """The syntax tree of ``source`` and the numbers of its lines holding code: a line counts
    when a token other than a comment starts or runs on it, outside any docstring."""
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, Definition) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip or token.type == tokenize.ENDMARKER:
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return tree, lines


def oversized(path: Path) -> Iterator[str]:
    """Every module, class and function of ``path`` past its limit, as ``where: n > limit``."""
    tree, lines = code_lines(path.read_text("utf-8"))
    name = path.relative_to(ROOT)
    if len(lines) > MAX_MODULE:
        yield f"{name}: module of {len(lines)} code lines > {MAX_MODULE}"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            kind, limit = "class", MAX_CLASS
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            kind, limit = "function", MAX_FUNCTION
        else:
            continue
        end = node.end_lineno or node.lineno
        size = sum(1 for n in lines if node.lineno <= n <= end)
        if size > limit:
            yield f"{name}:{node.lineno}: {kind} {node.name} of {size} code lines > {limit}"


def test_code_lines_skip_docstrings_comments_and_blank_lines() -> None:
    source = '''"""Module doc,
on two lines."""

# a comment
def f(x):
    """Doc."""
    y = (x +
         1)  # trailing comment

    return y
'''
    _, lines = code_lines(source)
    assert sorted(lines) == [5, 7, 8, 10]


def test_an_oversized_function_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION))
    path = tmp_path / "big.py"
    path.write_text(f"def big():\n{body}    return 0\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert list(oversized(path)) == [
        f"big.py:1: function big of {MAX_FUNCTION + 2} code lines > {MAX_FUNCTION}"
    ]


def test_no_module_class_or_function_is_oversized() -> None:
    problems = [p for path in sorted(PACKAGE.rglob("*.py")) for p in oversized(path)]
    assert not problems, "split these:\n" + "\n".join(problems)


def test_the_layers_and_the_pure_core_hold() -> None:
    """The import-linter contracts of pyproject.toml: the layers, and no I/O in the core."""
    proc = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
         "lint_imports_command()", "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_import_circles() -> None:
    """No two modules of ``digest`` import each other, directly or through others, even
    inside a function."""
    graph = grimp.build_graph("digest", cache_dir=None)
    circles = _strongly_connected(graph)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of two or more modules that reach each other (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.find_modules_directly_imported_by(module)):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups
