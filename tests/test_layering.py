"""The layering rules that ruff and import-linter do not check (docs/architecture.md): ragecg modules are
imported at module top (so that the import graph is the real one), no private name is imported from
another module, the environment is read and changed only in settings.py, and no module is named like
an API function."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ragecg"

# What `ragecg --help` imports: these keep their ragecg imports inside the commands, so that the command
# line starts without importing the pipeline (docs/benchmarks.md, "Layering").
LAZY_ALLOWED = {"__init__.py", "app/cli.py", "app/eval/cli.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _is_ragecg(node: ast.ImportFrom | ast.Import) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == "ragecg" or a.name.startswith("ragecg.") for a in node.names)
    return node.level > 0 or (node.module or "").split(".")[0] == "ragecg"


def _function_level_imports(tree: ast.Module):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and _is_ragecg(node):
                    yield node


def test_ragecg_modules_are_imported_at_module_top():
    found = [f"ragecg/{name}:{node.lineno}" for name, tree in _modules() if name not in LAZY_ALLOWED
             for node in _function_level_imports(tree)]
    assert not found, f"in-function imports of ragecg modules: {found}"


def test_the_allowed_lazy_imports_stay_in_the_command_line():
    # the allowance is used (else it should be removed), and only by the modules listed
    counts = {name: sum(1 for _ in _function_level_imports(tree)) for name, tree in _modules()}
    assert counts["app/cli.py"] > 0
    assert {name for name, n in counts.items() if n} <= LAZY_ALLOWED


def test_no_type_checking_imports_of_ragecg_modules():
    found = [f"ragecg/{name}:{node.lineno}" for name, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    assert not found, f"TYPE_CHECKING blocks (a type lives in ragecg.values instead): {found}"


def test_no_private_name_is_imported_from_another_ragecg_module():
    found = [f"ragecg/{name}:{node.lineno} {a.name}" for name, tree in _modules() for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and _is_ragecg(node)
             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, f"private names imported across modules: {found}"


def test_only_settings_reads_or_changes_the_environment():
    found = [f"ragecg/{name}:{node.lineno}" for name, tree in _modules() if name != "settings.py"
             for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv")
             and isinstance(node.value, ast.Name) and node.value.id == "os"]
    assert not found, f"environment read or changed outside ragecg/settings.py: {found}"


def test_no_module_is_named_like_an_api_function():
    import ragecg
    api = {"diagnose", "measure"}
    assert api <= set(ragecg.__all__)
    clashes = [p.name for p in PACKAGE.iterdir() if p.stem in api]
    assert not clashes
    assert callable(ragecg.measure) and callable(ragecg.diagnose)
