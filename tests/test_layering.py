"""The part of the layering contract that import-linter does not check (README "Layout").

import-linter (`lint-imports`, pyproject `[tool.importlinter]`) checks which package may import which.
This checks, by parsing the sources:

· no import cycle between modules through top-level imports — inside one package too (a cycle makes the
  result of an import depend on which module happens to be imported first, and two modules that need
  each other are one module in two files). An import inside a function runs when it is called, after
  every module is loaded, so it breaks no load order and is not counted; an `if TYPE_CHECKING:` import is
  counted (it is the same mutual knowledge, only hidden from the interpreter);
· `bot.messages`, the neutral module that bot/ and handlers/ share, imports only the standard library, and
  `bot/__init__.py` imports nothing (importing any `bot.x` runs it).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "storage", "schedules")

# Cycles present in files outside issue 11's settings/layering part, being removed by the adapter split;
# each entry is the sorted module names of one cycle. The test fails when one of them disappears too, so
# that this list only ever shrinks.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "versions" in path.relative_to(ROOT).parts:  # Alembic revisions are loaded by file name
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports at module level: the module body, its `if` (`TYPE_CHECKING` too) / `try` / `with` blocks and
    class bodies; not function bodies."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _top_level_imports(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _top_level_imports(node.body)


def _imported_names(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The dotted names an import statement loads: `from a import b` loads the module `a.b` when there is
    one, else it reads `b` from `a` (whose `__init__` must then have run)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _top_level_imports(tree.body):
            graph[name] |= {target for target in _imported_names(name, path, node, names) if target in names} - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules_at_top_level() -> None:
    cycles = _cycles(_graph())
    assert cycles - KNOWN_CYCLES == set(), f"new import cycles: {sorted(cycles - KNOWN_CYCLES)}"
    gone = sorted(KNOWN_CYCLES - cycles)
    assert not gone, f"cycles gone, remove them from KNOWN_CYCLES: {gone}"


def test_the_check_sees_a_cycle_inside_one_package() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert _cycles(graph) == {("p.a", "p.b", "p.c")}
    tree = ast.parse(
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom . import b\n"
        "if TYPE_CHECKING:\n    from p import c\ndef f():\n    from p import d\n"
    )
    modules = {"p", "p.a", "p.b", "p.c", "p.d"}
    loaded = [n for node in _top_level_imports(tree.body) for n in _imported_names("p.a", Path("a.py"), node, modules)]
    assert "p.b" in loaded and "p.c" in loaded and "p.d" not in loaded


def test_the_neutral_message_module_imports_only_the_standard_library() -> None:
    path = ROOT / "bot" / "messages.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in _imported_names("bot.messages", path, node, set())
        if name
    }
    assert imported <= set(sys.stdlib_module_names), sorted(imported - set(sys.stdlib_module_names))
    init = ast.parse((ROOT / "bot" / "__init__.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(init) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_the_platform_settings_rows_load_no_platform_client() -> None:
    """Every router offers 设置 推送 and 设置 钉钉机器人, so their modules must stay plain parsing."""
    import subprocess

    probe = (
        "import sys, bot.adapters.wecom_settings, bot.adapters.dingtalk_settings\n"
        "print(sorted(m for m in ('aiohttp', 'wechatpy', 'dingtalk') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
