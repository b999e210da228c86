"""The house: no import cycles, the library never imports gradio, short files, an installed command."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "red_explorer"
UI = PACKAGE / "app" / "ui"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every red_explorer module this file imports, at the top or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("red_explorer"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("red_explorer")}
    return found & known


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of module imports, ignoring edges into the package's own top (its __init__ re-exports)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if target == "red_explorer":
                continue
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None, f"import cycle: {' -> '.join(find_cycle(import_graph()))}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_ui_imports_gradio():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if UI not in path.parents and ("import gradio" in path.read_text() or "from gradio" in path.read_text())
    ]
    assert offenders == []


def test_every_file_stays_short():
    sources = [
        *PACKAGE.rglob("*.py"),
        *(PACKAGE.parent / "tests").glob("*.py"),
        *(PACKAGE.parent / "scripts").glob("*.py"),
    ]
    long_files = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sources
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long_files == {}


def test_the_installed_command_runs_from_anywhere(tmp_path):
    """`pip install -e .` (scripts/setup.sh) puts red-explorer on the PATH; it works outside the repository."""
    command = shutil.which("red-explorer")
    if command is None:
        pytest.fail("red-explorer is not installed: run bash scripts/setup.sh --test (pip install -e .)")
    result = subprocess.run([command, "train", "--help"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "usage: red-explorer train" in result.stdout and "--method" in result.stdout


def test_the_build_asks_for_a_setuptools_that_reads_an_spdx_license():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # an SPDX expression (PEP 639): setuptools 77 or newer
    (setuptools,) = [Requirement(line) for line in project["build-system"]["requires"] if line.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")
