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
too (and refuse without ``trust_remote_code``); [`load_native`] loads such a folder with this package's classes
instead, ignoring the shipped code.

Example:
    >>> import json, tempfile
    >>> from sinddm_pipeline.remote_code import REMOTE_MODULE, add_remote_code, flattened_source
    >>> "class SinDDMPipeline(FastInferenceMixin, DiffusionPipeline)" in flattened_source()
    True
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

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
    "acceleration",
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
    from . import __version__

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


def has_remote_code(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (a saved pipeline) was written by [`add_remote_code`]."""
    index_path = Path(folder) / "model_index.json"
    if not index_path.is_file():
        return False
    return read_model_index(Path(folder)).get("_class_name") == [REMOTE_MODULE, PIPELINE_CLASS]


def resolve_folder(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Path:
    """The local folder of a pipeline: the path itself, or the Hub snapshot (downloaded or from the cache).

    Uses ``cache_dir``, ``revision``, ``token``, ``local_files_only``, ``force_download`` and ``proxies`` of
    ``kwargs``; respects ``HF_HUB_OFFLINE``.
    """
    if os.path.isdir(pretrained_model_name_or_path):
        return Path(pretrained_model_name_or_path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    name = str(pretrained_model_name_or_path)
    if os.path.isfile(name):
        raise NotADirectoryError(f"{name} is a file: expected a pipeline folder (with model_index.json) or a Hub id.")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(
            f"No pipeline folder at {name}, and it is not a Hub repo id either (expected 'user/name')."
        ) from None

    keys = ("cache_dir", "revision", "token", "local_files_only", "force_download", "proxies")
    return Path(snapshot_download(name, **{k: kwargs[k] for k in keys if k in kwargs}))


def read_model_index(folder: Path) -> dict:
    """``folder/model_index.json``, checked: valid JSON (an error names the file) naming SinDDM's scheduler and
    pyramid classes (another scheduler would load silently with SinDDM's config ignored)."""
    path = Path(folder) / "model_index.json"
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}.") from error
    if not isinstance(index, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(index).__name__}.")
    for name, expected in (("scheduler", "SinDDMScheduler"), ("pyramid", "SinDDMPyramid")):
        named = index.get(name, [None, expected])
        if not isinstance(named, list) or len(named) != 2 or named[1] != expected:
            raise ValueError(f"{path} names the {name} {named!r}; a SinDDM pipeline has {expected}.")
    return index


def check_denoiser_weights(path: Path, model) -> None:
    """Refuse a weights file that does not hold exactly the model's weights as finite floating-point tensors (a
    missing weight would stay randomly initialised, an integer one be cast, a NaN spoil every sample, silently)."""
    import torch
    from safetensors import safe_open

    if not path.is_file():
        raise ValueError(f"{path} is missing: the denoiser's weights (safetensors) are needed.")
    with safe_open(str(path), framework="pt") as handle:
        stored = {key: handle.get_slice(key).get_dtype() for key in handle.keys()}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(stored)), sorted(set(stored) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold this denoiser's weights ({model.config.get('dim')} channels): "
            + (f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "")
            + "."
        )
    not_float = sorted(key for key, dtype in stored.items() if not dtype.startswith(("F", "BF")))
    if not_float:
        raise ValueError(f"{path}: weights must be floating point; {not_float[:3]} are {stored[not_float[0]]}.")
    for name, tensor in model.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{path}: the weight {name!r} holds NaN or infinite values.")


def load_native(cls: type, folder: str | os.PathLike, **kwargs: Any):
    """Load a folder written by [`add_remote_code`] with this package's classes (the shipped code is not run).

    Args:
        cls: the pipeline class (`SinDDMPipeline`, `SinDDMImg2ImgPipeline`, `SinDDMCLIPPipeline`, ...).
        folder: the local folder.
        kwargs: components to use as they are (``denoiser=...``; any other argument of ``cls.__init__``, e.g.
            ``clip_model=`` and ``tokenizer=``), ``dtype`` (or diffusers' deprecated ``torch_dtype``); the rest is
            ignored.
    """
    import inspect

    from .modeling_patch_denoiser import SinDDMPatchDenoiser
    from .modeling_pyramid import SinDDMPyramid
    from .modeling_sinddm import SinDDMModel
    from .scheduling_sinddm import SinDDMScheduler

    folder = Path(folder)
    index = read_model_index(folder)
    denoisers = {"SinDDMModel": SinDDMModel, "SinDDMPatchDenoiser": SinDDMPatchDenoiser}
    denoiser_class = index.get("denoiser", [None, "SinDDMModel"])[1]
    if denoiser_class not in denoisers:
        raise ValueError(
            f"{folder}/model_index.json names the denoiser class {denoiser_class!r}; expected one of "
            f"{sorted(denoisers)}."
        )
    classes = {"denoiser": denoisers[denoiser_class], "scheduler": SinDDMScheduler, "pyramid": SinDDMPyramid}
    parameters = set(inspect.signature(cls.__init__).parameters) - {"self"}
    components = {name: kwargs[name] for name in parameters if kwargs.get(name) is not None}
    for name, component_cls in classes.items():
        if name not in components:
            components[name] = component_cls.from_pretrained(folder, subfolder=name)
            if component_cls is SinDDMModel:
                check_denoiser_weights(folder / name / "diffusion_pytorch_model.safetensors", components[name])
    pipeline = cls(**components)
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if dtype is not None:
        pipeline.to(dtype)
    pipeline.register_to_config(_name_or_path=str(folder))
    return pipeline


def load_pipeline(cls: type, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
    """``cls.from_pretrained`` for this package: folders and repos with or without shipped code, ours never run.

    A repo id is resolved with `huggingface_hub.snapshot_download` (offline: from the cache), then a folder written
    by [`add_remote_code`] loads with [`load_native`] and any other with diffusers' `DiffusionPipeline.from_pretrained`
    (which on diffusers 0.42 also avoids its online check that wants ``denoiser/sinddm_pipeline.modeling_sinddm.py``).

    Example:
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.remote_code import load_pipeline
        >>> pipe = load_pipeline(SinDDMPipeline, "me/sinddm-hubble")  # doctest: +SKIP
    """
    from diffusers import DiffusionPipeline

    from .modeling_sinddm import SinDDMModel

    folder = resolve_folder(pretrained_model_name_or_path, **kwargs)
    if has_remote_code(folder):
        return load_native(cls, folder, **kwargs)
    read_model_index(folder)
    pipeline = DiffusionPipeline.from_pretrained.__func__(cls, str(folder), **kwargs)
    if kwargs.get("denoiser") is None and isinstance(pipeline.denoiser, SinDDMModel):
        check_denoiser_weights(Path(folder) / "denoiser" / "diffusion_pytorch_model.safetensors", pipeline.denoiser)
    return pipeline
