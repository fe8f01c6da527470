"""SinDDM web app (Gradio): `python app.py`, then open the printed address. Also a Hugging Face Space entry point.

Starts offline on the model shipped in `models/`; the model box also takes any Hub repo id (and, with
`--allow_folders`, pipeline folders of this machine), and models trained in the Train tab join the list. "Use your
own image" needs no training at all: an uploaded image becomes a training-free pipeline (`SinDDMPipeline.from_image`,
the closed-form patch denoiser) that every tab uses like a model. Every task has an API name (use_image, generate,
text_edit, harmonize, style_transfer, roi_generate, train), so scripts can call the app with `gradio_client`.
Host and port follow Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT environment variables (read by `launch()`).
Generate's "Fast sampling" takes the settings a short probe measured fastest on this machine
(`pipe.enable_fast_sampling()`: fp32 or bf16, channels_last, the second-order solver, strided steps).
`python app.py --bf16` (or SINDDM_APP_BF16=1, e.g. as a Space variable) forces every denoiser to bfloat16 and
channels_last: about 4x faster sampling on a CPU with bf16 instructions, quality within 1% of the exact path
(benchmarks/RESULTS.md), but ~17x slower on one without (AVX2 only), which the launcher then says; the samples and
the scheduler's arithmetic stay float32.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import math
import os
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from sinddm_pipeline import SinDDMCLIPPipeline, SinDDMImg2ImgPipeline, SinDDMPipeline, SinDDMScheduler

try:  # Hugging Face's ZeroGPU package, on a ZeroGPU Space; elsewhere absent (this repo's spaces/ folder has no GPU)
    import spaces
except ImportError:
    spaces = None
from sinddm_pipeline.fast_sampling import FastSamplingChoice, choose_fast_sampling
from sinddm_pipeline.image_inputs import MAX_PIXELS, MIN_SIDE, capped_size
from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL, MODE_SETTINGS, MODES
from sinddm_pipeline.roi import MAX_ROI_BOXES

ROOT = Path(__file__).resolve().parent
MODELS_DIR = ROOT / "models"
EXAMPLES_DIR = ROOT / "examples" / "app"
DEFAULT_MODEL = "hubble-sinddm"
MAX_MODEL_NAME = 256
"""Model names (a folder, a Hub repo id) longer than this are refused with a message."""
ALLOW_FOLDERS = os.environ.get("SINDDM_APP_ALLOW_FOLDERS", "0").strip().lower() in ("1", "true", "yes")
"""Whether the model box also opens pipeline folders of this machine (``--allow_folders`` /
SINDDM_APP_ALLOW_FOLDERS=1, for a local app); off: shipped and trained models, uploaded images and Hub repo ids only,
so that a deployed app never reads its server's disk on a visitor's request."""
ZERO_GPU = callable(getattr(spaces, "GPU", None))
"""On a ZeroGPU Space: every task runs under ``@spaces.GPU`` (see `on_gpu`); a CPU Space or a laptop is unchanged.
No handler uses torch.compile or CUDA graphs, which ZeroGPU's per-call GPU attachment does not keep."""
MCP_SERVER = importlib.util.find_spec("mcp") is not None
"""Every task (it has an api_name) is also an MCP tool when Gradio's MCP extra is installed (``gradio[mcp]``, as the
Space's requirements do)."""
GPU_SECONDS = 60
"""ZeroGPU duration of a sampling or editing request (seconds): tens of denoiser calls, a few seconds on a GPU."""
KEEP_HOURS = float(os.environ.get("SINDDM_APP_KEEP_HOURS", "24"))
"""Files in the app's default temporary folder (zips, trained models) older than this are deleted, as Gradio's own
cache (``delete_cache``): a long-running Space does not fill its disk. A folder set with SINDDM_APP_DIR is never
pruned."""
MAX_BATCH = 8
MAX_UPLOAD_PIXELS = 4096 * 4096
"""Uploads larger than this are refused; smaller ones over the 50,000 px budget are resized down with a note."""
MAX_OUTPUT_SIDE = 1024
MAX_TRAIN_STEPS = 20_000
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BF16 = os.environ.get("SINDDM_APP_BF16", "0").strip().lower() in ("1", "true", "yes")
"""Load denoisers in bfloat16 + channels_last (``--bf16`` / SINDDM_APP_BF16=1); off: the exact fp32 path."""
WORK_DIR = Path(os.environ.get("SINDDM_APP_DIR") or tempfile.mkdtemp(prefix="sinddm_app_"))
PRUNE_WORK_DIR = not os.environ.get("SINDDM_APP_DIR")
# Gradio caches examples under ./.gradio by default: keep them out of the checkout, with the app's other files
os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(WORK_DIR / "cached_examples"))
"""Where the app writes zips, trained models and temporary images (a fresh temporary folder by default)."""

_pipelines: dict[str, SinDDMPipeline] = {}
_clip: dict[str, tuple[Any, Any]] = {}
_trained: dict[str, str] = {}
_images: dict[str, SinDDMPipeline] = {}
_fast: weakref.WeakKeyDictionary[SinDDMPipeline, tuple[torch.nn.Module, FastSamplingChoice]] = (
    weakref.WeakKeyDictionary()
)
"""The fast-mode denoiser (the probe's dtype and memory format) and the probe's choice, by cached pipeline (weakly:
an evicted image pipeline takes its entry with it)."""
"""Training-free pipelines of uploaded images, by name ("image:<hash>"), the newest MAX_IMAGE_PIPELINES kept."""
MAX_IMAGE_PIPELINES = 8
_lock = threading.Lock()

# ----------------------------------------------------------------------------------------------------------------
# models


def shipped_models() -> list[str]:
    """Names of the pipeline folders shipped in models/."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def model_choices() -> list[str]:
    """The model picker's list: shipped models, the models trained in this session, then the uploaded images."""
    return shipped_models() + sorted(_trained) + list(_images)


def resolve_model(name: str | None) -> str:
    """A shipped or trained model's folder, a given folder (with ``--allow_folders`` only; its real path: one cache
    entry however it is spelled), or the name as it is (a Hub repo id)."""
    name = (name or "").strip()
    if not name:
        raise gr.Error("Choose a model: a shipped or trained one, your image or a Hub repo id (user/name).")
    if len(name) > MAX_MODEL_NAME:
        raise gr.Error(
            f"The model name is {len(name):,} characters long; at most {MAX_MODEL_NAME}: give a shipped or trained "
            "model, a pipeline folder or a Hub repo id (user/name)."
        )
    if name in _trained:
        return _trained[name]
    if "/" not in name and "\\" not in name and name not in (".", ".."):
        shipped = MODELS_DIR / name
        if (shipped / "model_index.json").is_file():
            return str(shipped)
    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or os.path.isdir(name):
        if not ALLOW_FOLDERS:
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
            try:
                pipe = SinDDMPipeline.from_pretrained(location, **({"dtype": torch.bfloat16} if BF16 else {}))
                pipe = pipe.to(DEVICE)
            except Exception as error:  # any loading failure becomes a message in the UI
                raise gr.Error(f"Cannot load the model {name!r}: {first_line(error)}") from error
            if BF16:
                pipe.denoiser.to(memory_format=torch.channels_last)
            pipe.set_progress_bar_config(disable=True)
            _pipelines[location] = pipe
        return _pipelines[location]


def image_pipeline(picture: Image.Image) -> str:
    """The name of the training-free pipeline of ``picture`` (built once per image content, no training)."""
    name = "image:" + hashlib.sha1(picture.tobytes() + repr(picture.size).encode()).hexdigest()[:10]
    with _lock:
        if name not in _images:
            try:
                pipe = SinDDMPipeline.from_image(picture).to(DEVICE)
            except ValueError as error:
                raise gr.Error(first_line(error)) from error
            pipe.set_progress_bar_config(disable=True)
            pipe.denoiser.prepare()  # the candidate indexes now, so that the first request is fast
            _images[name] = pipe
            while len(_images) > MAX_IMAGE_PIPELINES:
                _images.pop(next(iter(_images)))
    return name


def load_clip(name: str | None) -> tuple[Any, Any]:
    """Load (once) a CLIP model and tokenizer from a Hub id or a local folder; a readable error when impossible."""
    from transformers import CLIPModel, CLIPTokenizer

    name = (name or "").strip() or DEFAULT_CLIP_MODEL
    with _lock:
        if name not in _clip:
            try:
                model = CLIPModel.from_pretrained(name).to(DEVICE)
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


def fast_request_pipeline(name: str | None) -> SinDDMPipeline:
    """A request pipeline (see `request_pipeline`) on the fast settings measured best on this machine
    (`SinDDMPipeline.enable_fast_sampling`, probed once per model): the second-order solver, the fast steps when a
    call gives none, and the probe's dtype and memory format on a copy of the cached denoiser (unless ``--bf16``
    already forced them)."""
    base = load_pipeline(name)
    with _lock:
        if base not in _fast:
            choice = choose_fast_sampling(base)
            denoiser = base.denoiser
            if not BF16 and (choice.dtype != denoiser.dtype or choice.channels_last):
                denoiser = copy.deepcopy(denoiser).to(choice.dtype)
                if choice.channels_last:
                    denoiser.to(memory_format=torch.channels_last)
            _fast[base] = (denoiser, choice)
        denoiser, choice = _fast[base]
    scheduler = SinDDMScheduler.from_config(base.scheduler.config, solver_order=choice.solver_order)
    pipe = SinDDMPipeline(denoiser=denoiser, scheduler=scheduler, pyramid=base.pyramid)
    pipe.set_progress_bar_config(disable=True)
    pipe._fast_num_inference_steps = choice.num_inference_steps
    return pipe


def training_image(name: str | None) -> Image.Image | None:
    """The model's training image (its finest scale), or None when the model cannot be loaded."""
    try:
        pyramid = load_pipeline(name).pyramid
    except gr.Error:
        return None
    return pyramid.pil(pyramid.num_scales - 1)


# ----------------------------------------------------------------------------------------------------------------
# small helpers


def first_line(error: BaseException) -> str:
    """An exception's message on one line, without a traceback."""
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__


def readable_upload_errors(component: gr.Image | gr.ImageEditor) -> gr.Image | gr.ImageEditor:
    """Make an image component's upload that is not an image file (a script can send any file) give a readable
    gr.Error instead of Gradio's generic processing error. (The instance's method is wrapped: a subclass of a Gradio
    component would make Gradio write a .pyi stub next to this file.)"""
    preprocess = component.preprocess

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            label = component.label or "The image"
            raise gr.Error(f"{label}: not an image file that can be read (PNG, JPEG, WebP, ...).") from error

    component.preprocess = checked
    return component


def step_progress(progress: gr.Progress, desc: str) -> Callable:
    """A ``callback_on_step_end`` that reports every denoising step to ``progress`` (the pipeline's
    ``num_timesteps`` is the total)."""
    progress(0, desc=desc)

    def callback(pipe: Any, step_index: int, timestep: int, callback_kwargs: dict) -> dict:
        total, done = max(int(pipe.num_timesteps or 1), 1), step_index + 1
        progress(min(done / total, 1.0), desc=f"{desc} ({done}/{total} steps)")
        return {}

    return callback


def check_int(value: float | None, name: str, low: int, high: int) -> int:
    """An integer input in [low, high], else a readable gr.Error."""
    if value is None or not low <= float(value) <= high or float(value) != int(value):
        raise gr.Error(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    return int(value)


def check_float(value: float | None, name: str, low: float, high: float) -> float:
    """A number input in [low, high], else a readable gr.Error."""
    if value is None or not low <= float(value) <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {value!r}.")
    return float(value)


def make_generator(seed: float | None) -> torch.Generator:
    """A generator on the app's device seeded from the seed box."""
    return torch.Generator(DEVICE).manual_seed(check_int(seed, "Seed", 0, 2**63 - 1))


def check_upload_size(image: Image.Image, name: str) -> None:
    """Refuse an image over MAX_UPLOAD_PIXELS (an opened file's size comes from its header, before decoding)."""
    if image.width * image.height > MAX_UPLOAD_PIXELS:
        raise gr.Error(f"{name} is {image.width}x{image.height} px: too large (at most {MAX_UPLOAD_PIXELS:,} px).")


def open_image(value: Any, name: str, required: bool = True) -> tuple[Image.Image | None, str]:
    """An uploaded image (PIL, numpy or a file path) as RGB PIL, refused when not an image or huge, and resized to
    the 50,000 px budget with a note. Returns (image, note)."""
    if value is None:
        if required:
            raise gr.Error(f"Upload {name} first.")
        return None, ""
    image = value
    if isinstance(value, (str, os.PathLike)):
        try:
            with Image.open(value) as opened:
                check_upload_size(opened, name)  # from the header: a huge upload is refused before decoding
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise gr.Error(
                f"{name}: not an image file that can be read (PNG, JPEG, WebP, ...): {first_line(error)}"
            ) from error
    elif isinstance(value, np.ndarray):
        image = Image.fromarray(value)
    check_upload_size(image, name)
    if min(image.size) < MIN_SIDE:
        raise gr.Error(f"{name} is {image.width}x{image.height} px: at least {MIN_SIDE} px a side is needed.")
    image = image.convert("RGB")
    size = capped_size(image.width, image.height, MAX_PIXELS)
    if size == image.size:
        return image, ""
    note = f"{name} resized from {image.width}x{image.height} to {size[0]}x{size[1]} px (the {MAX_PIXELS:,} px budget)."
    return image.resize(size, Image.LANCZOS), note


def editor_parts(value: Any) -> tuple[Any, Image.Image | None]:
    """(background, brushed mask) of a gr.ImageEditor value; the mask is white where any layer was painted."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        return value, None
    background = value.get("background")
    if background is None:
        background = value.get("composite")
    mask = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        layer = Image.open(layer) if isinstance(layer, (str, os.PathLike)) else layer
        layer = Image.fromarray(layer) if isinstance(layer, np.ndarray) else layer
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        mask = alpha if mask is None else mask | alpha
    if mask is None or not mask.any():
        return background, None
    return background, Image.fromarray((mask * 255).astype(np.uint8))


def parse_box(values: Sequence[float | None], name: str) -> tuple[int, int, int, int]:
    """Four numbers (y, x, h, w) as an int box, or a readable error."""
    if any(value is None for value in values):
        raise gr.Error(f"{name}: give all four numbers y, x, height, width (or click two corners on the image).")
    if not all(math.isfinite(float(value)) and abs(float(value)) <= MAX_OUTPUT_SIDE * 4 for value in values):
        raise gr.Error(f"{name}: y, x, height and width must be finite pixel counts, got {tuple(values)}.")
    y, x, h, w = (int(value) for value in values)
    if y < 0 or x < 0 or h < 1 or w < 1:
        raise gr.Error(f"{name}: y and x must be >= 0 and height and width >= 1, got {(y, x, h, w)}.")
    return y, x, h, w


def parse_boxes(text: str | None) -> list[tuple[int, int, int, int]]:
    """Target boxes written as "y, x, h, w" groups separated by ';' or new lines."""
    boxes = []
    if len(text or "") > 20_000:
        raise gr.Error(f"Target boxes: {len(text):,} characters; at most {MAX_ROI_BOXES} boxes are allowed.")
    for part in (text or "").replace("\n", ";").split(";"):
        if not part.strip():
            continue
        try:
            numbers = [float(token) for token in part.replace(",", " ").split()]
        except ValueError as error:
            raise gr.Error(f"Target boxes: {part.strip()!r} is not four numbers y, x, h, w.") from error
        if len(numbers) != 4:
            raise gr.Error(f"Target boxes: {part.strip()!r} is not four numbers y, x, h, w.")
        boxes.append(parse_box(numbers, "Target box"))
    if not boxes:
        raise gr.Error('Give at least one target box, e.g. "10, 20, 40, 50" (y, x, height, width; ";" between).')
    return boxes


def draw_boxes(image: Image.Image, boxes: Iterable[Sequence[int]], color: str = "red") -> Image.Image:
    """A copy of ``image`` with the (y, x, h, w) boxes outlined."""
    image = image.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    for y, x, h, w in boxes:
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=color, width=2)
    return image


def prune_work_dir(now: float | None = None) -> list[str]:
    """Delete the zips and trained models in the app's temporary folder older than KEEP_HOURS (never one set with
    SINDDM_APP_DIR, nor the example cache); trained models leave the model list. Returns the deleted names."""
    if not PRUNE_WORK_DIR or not WORK_DIR.is_dir():
        return []
    oldest = (now if now is not None else time.time()) - KEEP_HOURS * 3600
    deleted = []
    for entry in WORK_DIR.iterdir():
        if entry.name == "cached_examples" or not entry.is_dir() or entry.stat().st_mtime >= oldest:
            continue
        for name, folder in list(_trained.items()):
            if Path(folder).is_relative_to(entry):
                del _trained[name]
        shutil.rmtree(entry, ignore_errors=True)
        deleted.append(entry.name)
    return deleted


def zip_images(images: list[Image.Image], stem: str) -> str:
    """The images as PNGs in a new zip file; returns its path (for a gr.File download)."""
    prune_work_dir()
    folder = Path(tempfile.mkdtemp(prefix=f"{stem}_", dir=WORK_DIR))
    path = folder / f"{stem}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index, image in enumerate(images):
            image_path = folder / f"{stem}_{index:02d}.png"
            image.save(image_path)
            archive.write(image_path, image_path.name)
    return str(path)


def run_pipeline(pipe: Any, **kwargs: Any) -> Any:
    """Call a pipeline; its input errors (ValueError) become readable gr.Errors."""
    try:
        return pipe(**kwargs)
    except ValueError as error:
        raise gr.Error(first_line(error)) from error


# ----------------------------------------------------------------------------------------------------------------
# tasks


def readable_errors(handler: Callable) -> Callable:
    """Any exception of a task becomes one readable line in the UI and the API (a gr.Error that names it), never a
    traceback or a bare "Error"."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as error:  # the pipelines' input checks: their message says it all
            raise gr.Error(first_line(error)) from error
        except Exception as error:
            raise gr.Error(f"{type(error).__name__}: {first_line(error)}") from error

    return wrapped


def on_gpu(duration: int | Callable[..., int]):
    """A task handler: readable errors (`readable_errors`), and ``@spaces.GPU(duration=duration)`` on a ZeroGPU
    Space (``duration``: seconds, or a function of the handler's arguments)."""

    def wrap(handler: Callable) -> Callable:
        handler = readable_errors(handler)
        return spaces.GPU(duration=duration)(handler) if ZERO_GPU else handler

    return wrap


def training_gpu_seconds(image: Any, steps: float, *_: Any, **__: Any) -> int:
    """ZeroGPU duration of a training request: 60 s for loading and the sample grid, plus 40 ms per step (an H200
    trains the paper's dim-160, batch-32 model at ~28 ms per step, benchmarks/RESULTS.md), for at most
    MAX_TRAIN_STEPS steps."""
    try:
        count = min(max(int(steps), 1), MAX_TRAIN_STEPS)
    except (TypeError, ValueError):
        count = MAX_TRAIN_STEPS
    return int(60 + 0.04 * count)


@on_gpu(GPU_SECONDS)
def use_image(image: Any) -> tuple[Any, str, Image.Image]:
    """Make an uploaded image the "model" of every tab: its training-free pipeline, no training.

    Returns (the model picker, now on the image's pipeline; a status line; the image as the pyramid sees it)."""
    picture, note = open_image(image, "Your image")
    name = image_pipeline(picture)
    pipe = _images[name]
    sizes = " → ".join(f"{w}x{h}" for h, w in pipe.scheduler.config.scale_sizes)
    status = (
        f"Ready, no training: **{name}** is selected in the model box for every tab ({pipe.scheduler.num_scales} "
        f"scales, {sizes}). {note}"
    ).strip()
    return gr.update(choices=model_choices(), value=name), status, pipe.pyramid.pil(pipe.pyramid.num_scales - 1)


@on_gpu(GPU_SECONDS)
def generate(
    model: str,
    num_images: float,
    seed: float,
    width_scale: float,
    height_scale: float,
    width: float | None = 0,
    height: float | None = 0,
    fast: bool = False,
    fast_steps: float = 0,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Random samples, optionally retargeted (scales, or an exact width / height; 0 keeps the scale) and fast (the
    settings measured best here; ``fast_steps`` per scale, 0: the measured fast steps)."""
    batch = check_int(num_images, "Number of images", 1, MAX_BATCH)
    generator = make_generator(seed)
    width_scale = check_float(width_scale, "Width scale", 0.25, 4.0)
    height_scale = check_float(height_scale, "Height scale", 0.25, 4.0)
    width = check_int(width or 0, "Width", 0, MAX_OUTPUT_SIDE) or None
    height = check_int(height or 0, "Height", 0, MAX_OUTPUT_SIDE) or None
    if width is not None and width < MIN_SIDE or height is not None and height < MIN_SIDE:
        raise gr.Error(f"Width and height must be 0 (use the scale) or at least {MIN_SIDE} px.")
    steps = (check_int(fast_steps, "Fast sampling steps", 0, 1000) or None) if fast else None
    if steps == 1:
        raise gr.Error("Fast sampling steps must be 0 (the measured fast steps) or at least 2 per scale.")
    # fast: the probe's settings, strided steps with the second-order solver (it keeps the fine scales' quality)
    pipe = fast_request_pipeline(model) if fast else request_pipeline(SinDDMPipeline, model)
    images = run_pipeline(
        pipe,
        callback_on_step_end=step_progress(progress, "Generating"),
        batch_size=batch,
        generator=generator,
        width_scale=width_scale,
        height_scale=height_scale,
        width=width,
        height=height,
        num_inference_steps=steps,
    ).images
    return [(image, f"seed {int(seed)} #{i}") for i, image in enumerate(images)], zip_images(images, "samples")


@on_gpu(GPU_SECONDS)
def text_edit(
    model: str,
    clip_name: str,
    prompt: str,
    mode: str,
    strength: float,
    fill_factor: float,
    roi_y: float | None,
    roi_x: float | None,
    roi_h: float | None,
    roi_w: float | None,
    num_images: float,
    seed: float,
    num_augmentations: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[list, list]:
    """CLIP-guided generation or editing; returns (images, guidance masks)."""
    if not (prompt or "").strip():
        raise gr.Error("Write a prompt: what the image should show, e.g. 'fire in the forest'.")
    if mode not in MODES:
        raise gr.Error(f"Mode must be one of {', '.join(MODES)}, got {mode!r}.")
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "mode": mode,
        "strength": check_float(strength, "Strength", 0.0, 1.0),
        "batch_size": check_int(num_images, "Number of images", 1, MAX_BATCH),
        "num_augmentations": check_int(num_augmentations, "CLIP views", 1, 64),
        "generator": make_generator(seed),
    }
    if mode == "roi":
        kwargs["roi_box"] = parse_box((roi_y, roi_x, roi_h, roi_w), "ROI box")
    else:
        kwargs["fill_factor"] = check_float(fill_factor, "Fill factor", 0.0, 1.0)
    load_pipeline(model)  # a bad model is reported before CLIP is loaded
    clip_model, tokenizer = load_clip(clip_name)
    pipe = request_pipeline(SinDDMCLIPPipeline, model, clip_model=clip_model, tokenizer=tokenizer)
    output = run_pipeline(pipe, callback_on_step_end=step_progress(progress, "Text-guided sampling"), **kwargs)
    return list(output.images), list(output.masks)


def img2img(
    model: str,
    image: Image.Image,
    mask: Image.Image | None,
    start_timestep: float,
    match_histogram: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress,
) -> list:
    """Style transfer (no mask) or harmonization (a mask) of a checked image."""
    batch = check_int(num_images, "Number of images", 1, MAX_BATCH)
    generator = make_generator(seed)
    pipe = request_pipeline(SinDDMImg2ImgPipeline, model)
    limit = pipe.scheduler.config.num_train_timesteps
    kwargs = {"start_timestep": check_int(start_timestep, "Start timestep", 1, limit)}
    output = run_pipeline(
        pipe,
        callback_on_step_end=step_progress(progress, "Denoising"),
        image=image,
        mask_image=mask,
        match_histogram=bool(match_histogram),
        batch_size=batch,
        generator=generator,
        **kwargs,
    )
    return list(output.images)


@on_gpu(GPU_SECONDS)
def harmonize(
    model: str,
    composite: Any,
    mask_file: str | None,
    start_timestep: float,
    match_histogram: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[list, str]:
    """Harmonize a pasted object: the composite from the editor, the mask brushed on it or uploaded."""
    background, brushed = editor_parts(composite)
    image, note = open_image(background, "The composite image")
    mask, _ = open_image(mask_file, "The mask", required=False)
    mask = mask if mask is not None else brushed
    if mask is None:
        raise gr.Error("Brush over the pasted object on the image, or upload a mask (white where it was pasted).")
    if not np.asarray(mask.convert("L")).any():
        raise gr.Error("The mask is black everywhere: white must mark the pasted object.")
    return img2img(model, image, mask, start_timestep, match_histogram, num_images, seed, progress), note


@on_gpu(GPU_SECONDS)
def style_transfer(
    model: str,
    content: Any,
    start_timestep: float,
    match_histogram: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[list, str]:
    """A content image redrawn with the training image's patches."""
    image, note = open_image(content, "The content image")
    return img2img(model, image, None, start_timestep, match_histogram, num_images, seed, progress), note


@on_gpu(GPU_SECONDS)
def roi_generate(
    model: str,
    src_y: float | None,
    src_x: float | None,
    src_h: float | None,
    src_w: float | None,
    target_boxes: str,
    width_scale: float,
    height_scale: float,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple[list, Image.Image]:
    """ROI-guided generation: the source box of the training image appears in each target box of the output.
    Returns (images, the training image with the source box outlined)."""
    source = parse_box((src_y, src_x, src_h, src_w), "Source box")
    targets = parse_boxes(target_boxes)
    batch = check_int(num_images, "Number of images", 1, MAX_BATCH)
    generator = make_generator(seed)
    width_scale = check_float(width_scale, "Width scale", 0.25, 4.0)
    height_scale = check_float(height_scale, "Height scale", 0.25, 4.0)
    images = run_pipeline(
        request_pipeline(SinDDMPipeline, model),
        callback_on_step_end=step_progress(progress, "ROI-guided sampling"),
        batch_size=batch,
        generator=generator,
        width_scale=width_scale,
        height_scale=height_scale,
        roi_source_box=source,
        roi_target_boxes=targets,
    ).images
    outlined = [(draw_boxes(image, targets), f"#{i} (targets outlined)") for i, image in enumerate(images)]
    return [(image, f"#{i}") for i, image in enumerate(images)] + outlined, draw_boxes(
        training_image(model) or images[0], [source], "yellow"
    )


# ----------------------------------------------------------------------------------------------------------------
# training


def zip_model(folder: Path) -> str:
    """The pipeline folder (without checkpoints) as a zip next to it; returns the zip's path."""
    path = folder.with_suffix(".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            relative = file.relative_to(folder)
            if file.is_file() and not relative.parts[0].startswith("checkpoint-"):
                archive.write(file, Path(folder.name) / relative)
    return str(path)


@on_gpu(training_gpu_seconds)
def train(
    image: Any,
    steps: float,
    dim: float,
    batch_size: float,
    seed: float,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - follows train_sinddm's tqdm bar
) -> tuple[list, str, Image.Image | None, str, Any]:
    """Train a SinDDM model on one image with train_sinddm.main in this thread (its tqdm bar drives the progress).

    Returns (samples, the model zip, the loss curve, a status line, the updated model picker)."""
    import train_sinddm

    picture, note = open_image(image, "The training image")
    steps = check_int(steps, "Training steps", 1, MAX_TRAIN_STEPS)
    dim = check_int(dim, "Model width (dim)", 4, 256)
    if dim % 2:
        raise gr.Error(f"Model width (dim) must be even, got {dim}.")
    batch = check_int(batch_size, "Batch size", 1, 64)
    seed = check_int(seed, "Seed", 0, 2**31 - 1)
    prune_work_dir()
    run = Path(tempfile.mkdtemp(prefix="train_", dir=WORK_DIR))
    image_path, output_dir = run / "image.png", run / f"sinddm-{run.name.removeprefix('train_')}"
    picture.save(image_path)
    argv = ["--image_path", str(image_path), "--output_dir", str(output_dir), "--max_train_steps", str(steps)]
    argv += ["--dim", str(dim), "--train_batch_size", str(batch), "--seed", str(seed)]
    argv += ["--checkpointing_steps", str(MAX_TRAIN_STEPS + 1), "--ema_start", str(max(steps // 2, 1))]
    progress(0, desc="Training")
    try:
        train_sinddm.main(train_sinddm.parse_args(argv))
    except (ValueError, OSError) as error:
        raise gr.Error(f"Training failed: {first_line(error)}") from error
    name = f"trained/{output_dir.name}"
    _trained[name] = str(output_dir)
    progress(1.0, desc="Sampling from the new model")
    pipe = request_pipeline(SinDDMPipeline, name)
    samples = pipe(batch_size=4, generator=torch.Generator(DEVICE).manual_seed(seed), num_inference_steps=10).images
    curve = output_dir / "loss_curve.png"
    status = f"Trained {steps} steps; the model is **{name}** in the model list. {note}".strip()
    picker = gr.update(choices=model_choices(), value=name)
    return samples, zip_model(output_dir), Image.open(curve) if curve.is_file() else None, status, picker


@readable_errors
def push_to_hub(model: str, repo_id: str, token: str, private: bool) -> str:
    """Upload a trained model's folder to a Hub model repo; returns a status line."""
    if model not in _trained:
        raise gr.Error("Train a model first (the Train tab): only models trained here can be pushed.")
    if not (repo_id or "").strip() or "/" not in repo_id:
        raise gr.Error("Give the Hub repo id as user/name.")
    if not (token or "").strip():
        raise gr.Error("Give a Hugging Face token with write access (https://huggingface.co/settings/tokens).")
    from sinddm_pipeline.hub import push_to_hub as push_folder

    try:  # the pipeline with a model card, sample grid and code for vanilla diffusers; checkpoints stay here
        push_folder(
            _trained[model],
            repo_id.strip(),
            commit_message="Upload a SinDDM model trained in the SinDDM app",
            private=bool(private),
            token=token.strip(),
        )
    except gr.Error:
        raise
    except Exception as error:  # offline, a bad token, no rights: one readable line
        raise gr.Error(f"Could not push to the Hub repo {repo_id!r}: {first_line(error)}") from error
    return f"Pushed to https://huggingface.co/{repo_id.strip()}"


# ----------------------------------------------------------------------------------------------------------------
# user interface


def click_box(image: Image.Image | None, corner: tuple | None, evt: gr.SelectData) -> tuple:
    """Two clicks on an image give a box: the first sets a corner, the second the opposite one.

    Returns (corner state, y, x, h, w) with the numbers unchanged (gr.update()) after the first click."""
    x, y = (int(v) for v in evt.index[:2])
    if corner is None:
        return (y, x), gr.update(), gr.update(), gr.update(), gr.update()
    y0, x0 = corner
    top, left = min(y, y0), min(x, x0)
    return None, top, left, abs(y - y0) + 1, abs(x - x0) + 1


def show_training_image(model: str) -> tuple[Image.Image | None, Image.Image | None]:
    """The model's training image for the Text edit and ROI tabs (nothing when it cannot be loaded)."""
    image = training_image(model)
    return image, image


def mode_defaults(mode: str) -> tuple[Any, Any]:
    """The strength and fill factor sliders set to the mode's defaults."""
    settings = MODE_SETTINGS.get(mode)
    if settings is None:
        return gr.update(), gr.update()
    fill = settings.fill_factor if settings.fill_factor is not None else 0.5
    return gr.update(value=settings.strength), gr.update(value=fill, interactive=mode != "roi")


def example_path(name: str) -> str | None:
    """An example image shipped in examples/app/, or None when absent."""
    path = EXAMPLES_DIR / name
    return str(path) if path.is_file() else None


def seed_and_batch(default_batch: int = 2) -> tuple[gr.Slider, gr.Number]:
    """The 'Number of images' slider and the seed box of a tab."""
    with gr.Row():
        batch = gr.Slider(1, MAX_BATCH, value=default_batch, step=1, label="Number of images")
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
    return batch, seed


def box_inputs(label: str, box: Sequence[int] = (20, 20, 40, 40)) -> list[gr.Number]:
    """Four number boxes y, x, height, width, starting on ``box``."""
    parts = ("y", "x", "height", "width")
    with gr.Row():
        return [
            gr.Number(value=value, precision=0, label=f"{label} {part}") for part, value in zip(parts, box, strict=True)
        ]


def generate_tab(model: gr.Dropdown) -> None:
    with gr.Tab("Generate"):
        num_images, seed = seed_and_batch()
        with gr.Row():
            width_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Width scale (retargeting)")
            height_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Height scale (retargeting)")
        with gr.Row():
            width = gr.Number(value=0, precision=0, minimum=0, label="Width in px (0: use the scale)")
            height = gr.Number(value=0, precision=0, minimum=0, label="Height in px (0: use the scale)")
        with gr.Row():
            fast = gr.Checkbox(
                value=False, label="Fast sampling (measured fastest here, second-order solver)", elem_id="generate-fast"
            )
            fast_steps = gr.Slider(0, 100, value=0, step=1, label="Steps per scale when fast (0: measured defaults)")
        button = gr.Button("Generate", variant="primary", elem_id="generate-button")
        gallery = gr.Gallery(label="Samples", columns=4, format="png", elem_id="generate-gallery")
        download = gr.File(label="Download (zip of PNGs)")
        inputs = [model, num_images, seed, width_scale, height_scale, width, height, fast, fast_steps]
        button.click(generate, inputs, [gallery, download], api_name="generate")
        gr.Examples(
            [[DEFAULT_MODEL, 4, 0, 2.0, 1.0, 0, 0, True, 0], [DEFAULT_MODEL, 2, 1, 1.0, 1.0, 320, 160, True, 0]],
            inputs,
            outputs=[gallery, download],
            fn=generate,
            cache_examples=True,
            cache_mode="lazy",  # computed on the first click, then served from the cache
            label="Examples (a panorama; an exact size)",
            elem_id="generate-examples",
        )


def text_edit_tab(model: gr.Dropdown) -> gr.Image:
    with gr.Tab("Text edit"):
        gr.Markdown(
            "CLIP-guided generation. The CLIP box takes a Hub id (needs internet) or a local folder holding a saved "
            "CLIPModel and tokenizer. For mode *roi*, give the box or click two corners on the training image."
        )
        with gr.Row():
            clip_name = gr.Textbox(value=DEFAULT_CLIP_MODEL, label="CLIP model (Hub id or folder)")
            prompt = gr.Textbox(value="fire in the forest", label="Prompt")
            mode = gr.Dropdown(list(MODES), value="content", label="Mode")
        with gr.Row():
            strength = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Strength")
            fill_factor = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Fill factor")
            views = gr.Slider(1, 32, value=8, step=1, label="CLIP views (augmentations)")
        num_images, seed = seed_and_batch(1)
        roi = box_inputs("ROI")
        with gr.Row():
            picture = gr.Image(label="Training image (click two corners for the ROI)", interactive=False)
            corner = gr.State(None)
        button = gr.Button("Edit", variant="primary")
        with gr.Row():
            images = gr.Gallery(label="Results", columns=4, format="png")
            masks = gr.Gallery(label="Guidance masks (white: where CLIP acted)", columns=4, format="png")
        mode.change(mode_defaults, mode, [strength, fill_factor])
        picture.select(click_box, [picture, corner], [corner, *roi])
        inputs = [model, clip_name, prompt, mode, strength, fill_factor, *roi, num_images, seed, views]
        button.click(text_edit, inputs, [images, masks], api_name="text_edit")
    return picture


def harmonize_tab(model: gr.Dropdown) -> None:
    with gr.Tab("Harmonize"):
        gr.Markdown("Upload a composite (an object pasted into an image) and brush over the object, or upload a mask.")
        with gr.Row():
            composite = readable_upload_errors(
                gr.ImageEditor(
                    type="pil", label="Composite (brush over the pasted object)", brush=gr.Brush(colors=["#ff0000"])
                )
            )
            mask_file = readable_upload_errors(
                gr.Image(type="filepath", label="Or a mask (white where the object is)", image_mode="L")
            )
        with gr.Row():
            start = gr.Slider(1, 100, value=5, step=1, label="Start timestep (larger changes more)")
            match = gr.Checkbox(value=False, label="Match the training image's histogram first")
        num_images, seed = seed_and_batch(1)
        button = gr.Button("Harmonize", variant="primary")
        gallery = gr.Gallery(label="Results", columns=4, format="png")
        note = gr.Markdown()
        inputs = [model, composite, mask_file, start, match, num_images, seed]
        button.click(harmonize, inputs, [gallery, note], api_name="harmonize")
        if example_path("composite.png") and example_path("composite_mask.png"):
            gr.Examples([[example_path("composite.png"), example_path("composite_mask.png")]], [composite, mask_file])


def style_transfer_tab(model: gr.Dropdown) -> None:
    with gr.Tab("Style transfer"):
        gr.Markdown("Upload a content image: it is redrawn with the training image's patches.")
        content = readable_upload_errors(gr.Image(type="filepath", label="Content image"))
        with gr.Row():
            start = gr.Slider(1, 100, value=15, step=1, label="Start timestep (larger changes more)")
            match = gr.Checkbox(value=True, label="Match the training image's histogram first")
        num_images, seed = seed_and_batch(1)
        button = gr.Button("Transfer", variant="primary")
        gallery = gr.Gallery(label="Results", columns=4, format="png")
        note = gr.Markdown()
        inputs = [model, content, start, match, num_images, seed]
        button.click(style_transfer, inputs, [gallery, note], api_name="style_transfer")
        if example_path("content.png"):
            gr.Examples([[example_path("content.png")]], [content])


def roi_tab(model: gr.Dropdown) -> gr.Image:
    with gr.Tab("ROI generation"):
        gr.Markdown(
            "Copy a region of the training image (the source box: numbers, or click two corners on the image) into "
            'target boxes of the output, written as "y, x, height, width" with ";" between boxes.'
        )
        source = box_inputs("Source", (60, 60, 60, 60))
        targets = gr.Textbox(value="10, 10, 60, 60; 10, 150, 60, 60", label="Target boxes (pixels of the output)")
        with gr.Row():
            width_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Width scale")
            height_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Height scale")
        num_images, seed = seed_and_batch(1)
        with gr.Row():
            picture = gr.Image(label="Training image (click two corners for the source box)", interactive=False)
            corner = gr.State(None)
        button = gr.Button("Generate with ROI", variant="primary")
        gallery = gr.Gallery(label="Results (and with the target boxes outlined)", columns=4, format="png")
        picture.select(click_box, [picture, corner], [corner, *source])
        inputs = [model, *source, targets, width_scale, height_scale, num_images, seed]
        button.click(roi_generate, inputs, [gallery, picture], api_name="roi_generate")
    return picture


def train_tab(model: gr.Dropdown) -> None:
    with gr.Tab("Train"):
        gr.Markdown(
            "Train the neural model on one image (a few hundred steps give a rough model in minutes on a CPU; the "
            "paper trains 120,000). No training is needed to sample from an image: use *your own image* at the top. "
            "A trained model joins the model list; download it as a zip or push it to the Hub"
            + (f" (the app keeps it {KEEP_HOURS:g} hours)." if PRUNE_WORK_DIR else ".")
        )
        image = readable_upload_errors(gr.Image(type="filepath", label="Training image"))
        with gr.Row():
            steps = gr.Number(value=300, precision=0, minimum=1, maximum=MAX_TRAIN_STEPS, label="Training steps")
            dim = gr.Number(value=32, precision=0, minimum=4, maximum=256, label="Model width (dim, even)")
            batch = gr.Number(value=8, precision=0, minimum=1, maximum=64, label="Batch size")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
        button = gr.Button("Train", variant="primary")
        status = gr.Markdown()
        with gr.Row():
            samples = gr.Gallery(label="Samples of the new model (fast sampling)", columns=4, format="png")
            curve = gr.Image(label="Loss curve", type="pil")
        download = gr.File(label="The model (zip)")
        button.click(
            train,
            [image, steps, dim, batch, seed],
            [samples, download, curve, status, model],
            api_name="train",
            concurrency_limit=1,
        )
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                repo_id = gr.Textbox(label="Repo id (user/name)")
                token = gr.Textbox(label="Token (write access)", type="password")
                private = gr.Checkbox(value=False, label="Private")
            push = gr.Button("Push the selected trained model")
            pushed = gr.Markdown()
            push.click(push_to_hub, [model, repo_id, token, private], pushed, api_name="push_to_hub")
        if example_path("train.png"):
            gr.Examples([[example_path("train.png")]], [image])


def build_demo(default_model: str | None = None) -> gr.Blocks:
    """The app: a model picker (starting on ``default_model``, the shipped model by default) and one tab per task."""
    models = model_choices()
    if default_model is None:
        default_model = DEFAULT_MODEL if DEFAULT_MODEL in models else None
    # delete_cache: Gradio's copies of outputs older than KEEP_HOURS go, checked hourly
    with gr.Blocks(title="SinDDM", delete_cache=(3600, int(KEEP_HOURS * 3600))) as demo:
        gr.Markdown(
            "# SinDDM\nA diffusion model of **one** image generates new images like it, at any size. Use your own "
            "image (no training: a closed-form patch denoiser, samples in seconds), or pick a shipped model or a Hub "
            "repo id."
        )
        with gr.Row():
            own = readable_upload_errors(
                gr.Image(type="filepath", label="Use your own image (no training)", elem_id="own-image", scale=1)
            )
            with gr.Column(scale=2):
                model = gr.Dropdown(
                    choices=models,
                    value=default_model,
                    label="Model (your image, a shipped or trained one, or a Hub repo id)",
                    allow_custom_value=True,
                    elem_id="model-picker",
                )
                own_status = gr.Markdown(elem_id="own-image-status")
        own_preview = gr.Image(visible=False, type="pil")
        own.upload(use_image, own, [model, own_status, own_preview], api_name="use_image")
        if example_path("train.png"):
            gr.Examples(
                [[example_path("train.png")]],
                [own],
                outputs=[model, own_status, own_preview],
                fn=use_image,
                run_on_click=True,
                cache_examples=False,
                label="An image to try",
            )
        generate_tab(model)
        text_picture = text_edit_tab(model)
        harmonize_tab(model)
        style_transfer_tab(model)
        roi_picture = roi_tab(model)
        train_tab(model)
        model.change(show_training_image, model, [text_picture, roi_picture], api_visibility="private")
        demo.load(show_training_image, model, [text_picture, roi_picture], api_visibility="private")
    return demo


def bf16_note(pipe: SinDDMPipeline) -> str | None:
    """A warning for ``--bf16`` when the fast-sampling probe measured bf16 slower than fp32 here (e.g. a CPU
    without bf16 instructions), else None."""
    choice = choose_fast_sampling(pipe)
    if not choice.bf16_slower:
        return None
    return (
        f"Note: --bf16 is slower than fp32 on this machine (measured per denoiser call: {choice.probe_text()}); "
        "without it, Generate's fast mode picks the faster setting by itself."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Launch the app (host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860)."""
    import argparse

    global BF16, ALLOW_FOLDERS
    parser = argparse.ArgumentParser(description="The SinDDM web app.")
    parser.add_argument(
        "--bf16", action="store_true", help="Denoisers in bfloat16 + channels_last (faster; default: exact fp32)."
    )
    parser.add_argument(
        "--allow_folders", action="store_true", help="Let the model box open pipeline folders of this machine."
    )
    args = parser.parse_args(argv)
    BF16 = args.bf16 or BF16
    ALLOW_FOLDERS = args.allow_folders or ALLOW_FOLDERS
    if BF16 and shipped_models():
        note = bf16_note(load_pipeline(DEFAULT_MODEL if DEFAULT_MODEL in shipped_models() else shipped_models()[0]))
        if note:
            print(note)
    build_demo().queue(default_concurrency_limit=2, max_size=32).launch(
        allowed_paths=[str(WORK_DIR)], mcp_server=MCP_SERVER
    )


if __name__ == "__main__":
    main()
