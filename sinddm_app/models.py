"""Model names to pipelines, cached: shipped and trained models, uploaded images (training-free pipelines), Hub repo
ids, folders (with ``--allow_folders``), CLIP models, and the fast-mode settings probed once per model.

Each request gets its own pipeline object over the cached weights (`request_pipeline`), with its own scheduler, so
that concurrent requests never step each other's timesteps.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import weakref
from typing import Any

import gradio as gr
import torch
from PIL import Image

from sinddm_pipeline import SinDDMPipeline, SinDDMScheduler
from sinddm_pipeline.fast_sampling import FastSamplingChoice, choose_fast_sampling
from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL

from . import settings
from .errors import first_line

_pipelines: dict[str, SinDDMPipeline] = {}
"""Loaded pipelines, by resolved location (a folder or a Hub repo id)."""
_clip: dict[str, tuple[Any, Any]] = {}
_trained: dict[str, str] = {}
"""Models trained in this session: name ("trained/<folder>") -> folder."""
_images: dict[str, SinDDMPipeline] = {}
"""Training-free pipelines of uploaded images, by name ("image:<hash>"), the newest MAX_IMAGE_PIPELINES kept."""
_fast: weakref.WeakKeyDictionary[SinDDMPipeline, tuple[torch.nn.Module, FastSamplingChoice]] = (
    weakref.WeakKeyDictionary()
)
"""The fast-mode denoiser (the probe's dtype and memory format) and the probe's choice, by cached pipeline (weakly:
an evicted image pipeline takes its entry with it)."""
_lock = threading.Lock()


def shipped_models() -> list[str]:
    """Names of the pipeline folders shipped in models/."""
    return sorted(p.name for p in settings.MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def model_choices() -> list[str]:
    """The model picker's list: shipped models, the models trained in this session, then the uploaded images."""
    return shipped_models() + sorted(_trained) + list(_images)


def resolve_model(name: str | None) -> str:
    """A shipped or trained model's folder, a given folder (with ``--allow_folders`` only; its real path: one cache
    entry however it is spelled), or the name as it is (a Hub repo id)."""
    name = (name or "").strip()
    if not name:
        raise gr.Error("Choose a model: a shipped or trained one, your image or a Hub repo id (user/name).")
    if len(name) > settings.MAX_MODEL_NAME:
        raise gr.Error(
            f"The model name is {len(name):,} characters long; at most {settings.MAX_MODEL_NAME}: give a shipped or "
            "trained model, a pipeline folder or a Hub repo id (user/name)."
        )
    if name in _trained:
        return _trained[name]
    if "/" not in name and "\\" not in name and name not in (".", ".."):
        shipped = settings.MODELS_DIR / name
        if (shipped / "model_index.json").is_file():
            return str(shipped)
    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or os.path.isdir(name):
        if not settings.ALLOW_FOLDERS:
            raise gr.Error(
                f"{name!r}: the model box takes a shipped or trained model, your image or a Hub repo id (user/name); "
                "folders of this machine only when the app is started with --allow_folders."
            )
        return os.path.realpath(name)
    return name


def load_pipeline(name: str | None) -> SinDDMPipeline:
    """Load (once) and cache the pipeline of a model name, with a readable error when it cannot be loaded."""
    if (name or "").strip() in _images:
        return _images[name.strip()]
    location = resolve_model(name)
    with _lock:
        if location not in _pipelines:
            bf16 = settings.BF16
            try:
                pipe = SinDDMPipeline.from_pretrained(location, **({"dtype": torch.bfloat16} if bf16 else {}))
                pipe = pipe.to(settings.DEVICE)
            except Exception as error:  # any loading failure becomes a message in the UI
                raise gr.Error(f"Cannot load the model {name!r}: {first_line(error)}") from error
            if bf16:
                pipe.denoiser.to(memory_format=torch.channels_last)
            pipe.set_progress_bar_config(disable=True)
            _pipelines[location] = pipe
        return _pipelines[location]


def image_pipeline(picture: Image.Image) -> str:
    """The name of the training-free pipeline of ``picture`` (built once per image content, no training)."""
    name = "image:" + hashlib.sha1(picture.tobytes() + repr(picture.size).encode()).hexdigest()[:10]
    with _lock:
        if name not in _images:
            pipe = SinDDMPipeline.from_image(picture).to(settings.DEVICE)  # a ValueError says what is wrong
            pipe.set_progress_bar_config(disable=True)
            pipe.denoiser.prepare()  # the candidate indexes now, so that the first request is fast
            _images[name] = pipe
            while len(_images) > settings.MAX_IMAGE_PIPELINES:
                _images.pop(next(iter(_images)))
    return name


def load_clip(name: str | None) -> tuple[Any, Any]:
    """Load (once) a CLIP model and tokenizer from a Hub id or a local folder; a readable error when impossible."""
    from transformers import CLIPModel, CLIPTokenizer

    name = (name or "").strip() or DEFAULT_CLIP_MODEL
    with _lock:
        if name not in _clip:
            try:
                model = CLIPModel.from_pretrained(name).to(settings.DEVICE)
                tokenizer = CLIPTokenizer.from_pretrained(name)
            except Exception as error:  # offline, a wrong id or folder: say what to do
                raise gr.Error(
                    f"Cannot load CLIP from {name!r} (offline, or not a CLIP model). Give a local folder holding a "
                    f"saved CLIPModel and its tokenizer, or a Hub id when online. Details: {first_line(error)}"
                ) from error
            _clip[name] = (model, tokenizer)
        return _clip[name]


def request_pipeline(cls: type, name: str | None, solver_order: int | None = None, **extra: Any) -> Any:
    """A pipeline of class ``cls`` for one request: the cached weights, shared, with its own copy of the (stateful)
    scheduler, so that concurrent requests never step each other's timesteps; progress bars off. ``solver_order``
    2: the scheduler's multistep reblurring solver (for strided sampling)."""
    base = load_pipeline(name)
    if solver_order is None:
        scheduler = copy.deepcopy(base.scheduler)
    else:  # a fresh scheduler from the config: no shared state either
        scheduler = SinDDMScheduler.from_config(base.scheduler.config, solver_order=solver_order)
    pipe = cls(denoiser=base.denoiser, scheduler=scheduler, pyramid=base.pyramid, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def fast_request_pipeline(name: str | None, cls: type = SinDDMPipeline) -> Any:
    """A request pipeline of class ``cls`` (see `request_pipeline`) on the fast settings measured best on this
    machine (`SinDDMPipeline.enable_fast_sampling`, probed once per model): the second-order solver, the fast steps
    when a call gives none, and the probe's dtype and memory format on a copy of the cached denoiser (unless
    ``--dtype bf16`` already forced them)."""
    base = load_pipeline(name)
    with _lock:
        if base not in _fast:
            choice = choose_fast_sampling(base)
            denoiser = base.denoiser
            if not settings.BF16 and (choice.dtype != denoiser.dtype or choice.channels_last):
                denoiser = copy.deepcopy(denoiser).to(choice.dtype)
                if choice.channels_last:
                    denoiser.to(memory_format=torch.channels_last)
            _fast[base] = (denoiser, choice)
        denoiser, choice = _fast[base]
    scheduler = SinDDMScheduler.from_config(base.scheduler.config, solver_order=choice.solver_order)
    pipe = cls(denoiser=denoiser, scheduler=scheduler, pyramid=base.pyramid)
    pipe.set_progress_bar_config(disable=True)
    pipe._fast_num_inference_steps = choice.num_inference_steps
    return pipe


def task_pipeline(cls: type, name: str | None, fast: bool = False) -> Any:
    """A request pipeline of class ``cls`` for the model ``name``: fast (`fast_request_pipeline`) or exact
    (`request_pipeline`)."""
    return fast_request_pipeline(name, cls) if fast else request_pipeline(cls, name)


def training_image(name: str | None) -> Image.Image | None:
    """The model's training image (its finest scale), or None when the model cannot be loaded."""
    try:
        pyramid = load_pipeline(name).pyramid
    except gr.Error:
        return None
    return pyramid.pil(pyramid.num_scales - 1)


def bf16_note(pipe: SinDDMPipeline) -> str | None:
    """A warning for ``--dtype bf16`` when the fast-sampling probe measured bf16 slower than fp32 here (e.g. a CPU
    without bf16 instructions), else None."""
    choice = choose_fast_sampling(pipe)
    if not choice.bf16_slower:
        return None
    return (
        f"Note: --dtype bf16 / --bf16 is slower than fp32 on this machine (measured per denoiser call: "
        f"{choice.probe_text()}); without it, Generate's fast mode picks the faster setting by itself."
    )
