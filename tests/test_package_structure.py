"""The package's shape: no import cycles between its modules (lazy imports inside functions included), one
denoising loop."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import sinddm_pipeline

PACKAGE_DIR = Path(sinddm_pipeline.__file__).resolve().parent
PACKAGE = "sinddm_pipeline"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, modules: set[str], is_package: bool = False) -> set[str]:
    """The package modules that the module ``name`` (its ``source``) imports anywhere, top level or in a function."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from . import x`: the submodule x, or a name of the package itself
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules else source)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {
        module_name(path): imported_modules(path.read_text(), module_name(path), modules, path.name == "__init__.py")
        for path in paths
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 20 and graph["sinddm_pipeline.pipeline_sinddm"]  # the walk sees the modules and imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_lazy_and_package_imports_are_edges():
    source = "import os\n\ndef f():\n    from .b import x\n    from . import c, __version__\n"
    modules = {PACKAGE, f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.c"}
    assert imported_modules(source, f"{PACKAGE}.a", modules) == {f"{PACKAGE}.b", f"{PACKAGE}.c", PACKAGE}


def test_every_pipeline_denoises_through_the_one_loop():
    """The reverse steps (scheduler.step) are called in one place: the base pipeline's stage runner."""
    from sinddm_pipeline import pipeline_sinddm, pipeline_sinddm_base, pipeline_sinddm_clip, pipeline_sinddm_img2img

    assert "scheduler.step(" in inspect.getsource(pipeline_sinddm_base)
    for module in (pipeline_sinddm, pipeline_sinddm_clip, pipeline_sinddm_img2img):
        assert "scheduler.step(" not in inspect.getsource(module), module.__name__
