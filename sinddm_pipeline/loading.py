"""Loading a SinDDM pipeline: resolve a folder or a Hub snapshot, check what it holds, build this package's classes.

Every pipeline's ``from_pretrained`` comes here ([`load_pipeline`]). A folder with code shipped for vanilla diffusers
(written by `sinddm_pipeline.remote_code.add_remote_code`) loads with this package's own classes ([`load_native`]),
never running the shipped code; any other folder goes through diffusers' `DiffusionPipeline.from_pretrained`. Both
check the model index and the denoiser's weights first, so a bad file is an error that names it.

Example:
    >>> from sinddm_pipeline import SinDDMPipeline
    >>> from sinddm_pipeline.loading import load_pipeline, resolve_folder
    >>> pipe = load_pipeline(SinDDMPipeline, "models/hubble-sinddm")
    >>> pipe.scheduler.num_scales == len(pipe.pyramid.config.scale_sizes)
    True
    >>> resolve_folder("not a folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    FileNotFoundError: No pipeline folder at not a folder, and it is not a Hub repo id either (expected 'user/name').
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .dtypes import quiet_dtype_cast
from .remote_code import PIPELINE_CLASS, REMOTE_MODULE


def has_remote_code(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (a saved pipeline) holds code written by `add_remote_code`."""
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
    """Load a folder written by `add_remote_code` with this package's classes (the shipped code is not run).

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
        with quiet_dtype_cast():
            pipeline.to(dtype)
    pipeline.register_to_config(_name_or_path=str(folder))
    return pipeline


def load_pipeline(cls: type, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
    """``cls.from_pretrained`` for this package: folders and repos with or without shipped code, ours never run.

    A repo id is resolved with `huggingface_hub.snapshot_download` (offline: from the cache), then a folder written
    by `add_remote_code` loads with [`load_native`] and any other with diffusers' `DiffusionPipeline.from_pretrained`
    (which on diffusers 0.42 also avoids its online check that wants ``denoiser/sinddm_pipeline.modeling_sinddm.py``).

    Example:
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.loading import load_pipeline
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
