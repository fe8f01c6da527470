"""Ship the SinDDM code inside a saved pipeline folder, so vanilla diffusers loads it with ``trust_remote_code=True``.

diffusers 0.42 loads code that travels with a pipeline in two places:

* the pipeline class, from ``<folder>/<module>.py`` when ``model_index.json`` has ``"_class_name": [module, class]``
  (``_resolve_custom_pipeline_and_cls``);
* each component class, from ``<folder>/<component>/<library>.py`` when that file exists, ``<library>`` being the
  first item of the component's ``model_index.json`` entry (``get_class_obj_and_candidates``).

Both are copied into diffusers' dynamic-module cache, where relative imports only reach the files that the loaded
file imports directly (the local branch of ``get_cached_module_file`` does not recurse). So [`add_remote_code`]
writes one self-contained module, ``sinddm_pipeline.py`` (our modules concatenated, relative imports removed), at
the root and in every component folder, sets ``_class_name`` to ``["sinddm_pipeline", "SinDDMPipeline"]`` and the
component entries to ``["sinddm_pipeline", "SinDDMModel"]`` etc. (``save_pretrained`` writes
``["sinddm_pipeline.modeling_sinddm", ...]``, a name no file can have), which name the shipped file.

This package's own [`~sinddm_pipeline.SinDDMPipeline.from_pretrained`] would, in plain diffusers, import those files
too (and refuse without ``trust_remote_code``); [`~sinddm_pipeline.loading.load_native`] loads such a folder with
this package's classes instead, ignoring the shipped code. This module only writes the code; `loading` reads.

Example:
    >>> import json, tempfile
    >>> from sinddm_pipeline.remote_code import REMOTE_MODULE, add_remote_code, flattened_source
    >>> "class SinDDMPipeline(SinDDMPipelineBase)" in flattened_source()
    True
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from .version import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
# The modules SinDDMPipeline needs, dependencies first (the order of the concatenation).
MODULES = (
    "limits",
    "pyramid",
    "retargeting",
    "roi",
    "modeling_sinddm",
    "scheduling_sinddm",
    "patch_posterior",
    "modeling_patch_denoiser",
    "modeling_pyramid",
    "dtypes",
    "acceleration",
    "pipeline_sinddm_base",
    "pipeline_sinddm",
)
REMOTE_MODULE = "sinddm_pipeline"
PIPELINE_CLASS = "SinDDMPipeline"
COMPONENTS = ("denoiser", "scheduler", "pyramid")


def _strip_package_imports(source: str, modules: tuple[str, ...] = MODULES) -> str:
    """``source`` without its ``from __future__`` imports and relative imports of ``modules``.

    Top-level relative imports are dropped (their names are globals of the flattened module), lazy ones inside a
    function become ``pass``. A function that lazily imports another part of this package (e.g. an override that
    delegates to `sinddm_pipeline.hub`) is left out: the shipped class keeps diffusers' behaviour there.
    """
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    replace: dict[int, str] = {}
    drop: set[int] = set()
    dropped_functions: set[int] = set()

    def needs_package(node: ast.AST) -> bool:
        return any(
            isinstance(child, ast.ImportFrom) and child.level > 0 and child.module not in modules
            for child in ast.walk(node)
        )

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and needs_package(node):
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            dropped_functions.update(range(first - 1, node.end_lineno))
        elif isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__"):
            if node.level > 0 and node.module not in modules and node.col_offset == 0:
                raise ValueError(f"A module to ship imports .{node.module}, which is not shipped: add it to MODULES.")
            drop.update(range(node.lineno - 1, node.end_lineno))
            if node.col_offset:
                replace[node.lineno - 1] = " " * node.col_offset + "pass\n"
    kept = []
    for index, line in enumerate(lines):
        if index in replace and index not in dropped_functions:
            kept.append(replace[index])
        elif index not in drop and index not in dropped_functions:
            kept.append(line)
    return "".join(kept)


def flattened_source(modules: tuple[str, ...] = MODULES) -> str:
    """One self-contained module: ``modules`` of this package concatenated, without their relative imports.

    The result only imports third-party libraries (torch, numpy, PIL, diffusers), never ``sinddm_pipeline``.
    """
    parts = [
        f'"""SinDDM for diffusers, generated from sinddm_pipeline {__version__} ({", ".join(modules)}).\n\n'
        "Shipped with the model so that `DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)` works\n"
        'without installing sinddm_pipeline. Do not edit: regenerate with sinddm_pipeline.remote_code."""\n\n'
        "from __future__ import annotations\n"
    ]
    for name in modules:
        source = (PACKAGE_DIR / f"{name}.py").read_text()
        parts.append(f"\n# ---- sinddm_pipeline/{name}.py ----\n\n{_strip_package_imports(source)}")
    flat = "".join(parts)
    ast.parse(flat)  # fail here, not at load time, if the concatenation is not valid Python
    return flat


def add_remote_code(folder: str | os.PathLike) -> list[str]:
    """Make a saved `SinDDMPipeline` folder loadable by vanilla diffusers with ``trust_remote_code=True``.

    Writes ``sinddm_pipeline.py`` at the root and in every component folder, and sets ``_class_name`` of
    ``model_index.json`` to ``["sinddm_pipeline", "SinDDMPipeline"]`` and each component's library to
    ``"sinddm_pipeline"``.

    Returns:
        The written code files, relative to ``folder``.

    Example:
        >>> import tempfile, torch
        >>> from diffusers import DiffusionPipeline
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.remote_code import add_remote_code
        >>> folder = tempfile.mkdtemp()
        >>> SinDDMPipeline.from_pretrained("models/hubble-sinddm").save_pretrained(folder)  # doctest: +SKIP
        >>> add_remote_code(folder)[:2]  # doctest: +SKIP
        ['sinddm_pipeline.py', 'denoiser/sinddm_pipeline.py']
        >>> pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)  # doctest: +SKIP
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    class_name = index["_class_name"]
    if (class_name[1] if isinstance(class_name, list) else class_name) != PIPELINE_CLASS:
        raise ValueError(f"{folder} holds a {class_name} pipeline; only {PIPELINE_CLASS} folders can ship code.")
    source = flattened_source()
    written = []
    for subfolder in ("", *COMPONENTS):
        if subfolder:
            entry = index.get(subfolder)
            if not isinstance(entry, list) or not str(entry[0]).startswith(REMOTE_MODULE):
                raise ValueError(f"model_index.json entry {subfolder!r} is {entry!r}, not a sinddm_pipeline class.")
            index[subfolder] = [REMOTE_MODULE, entry[1]]  # the library name is also the shipped file's name
        (folder / subfolder / f"{REMOTE_MODULE}.py").write_text(source)
        written.append(f"{subfolder}/{REMOTE_MODULE}.py" if subfolder else f"{REMOTE_MODULE}.py")
    index["_class_name"] = [REMOTE_MODULE, PIPELINE_CLASS]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return written
