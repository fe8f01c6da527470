"""The app's own checks of what a visitor (or a script) sends: numbers as the UI bounds them, seeds, uploads, boxes.

What the pipelines check themselves (an ROI box inside the image, a strength in [0, 1], a start timestep, an output
too small, an empty mask) is left to them: their ValueError reaches the UI as one line (`errors.readable_errors`).

Example:
    >>> from sinddm_app.inputs import check_int, parse_boxes
    >>> check_int(3.0, "Number of images", 1, 8)  # Gradio sends whole numbers as floats too
    3
    >>> parse_boxes("10, 20, 40, 50; 0 0 8 8")
    [(10, 20, 40, 50), (0, 0, 8, 8)]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sinddm_pipeline.image_inputs import MAX_PIXELS
from sinddm_pipeline.limits import check_count
from sinddm_pipeline.pyramid import capped_size
from sinddm_pipeline.roi import MAX_ROI_BOXES

from . import settings
from .errors import first_line


def whole(value: Any) -> Any:
    """A float with no fractional part (how Gradio may send a whole number) as an int; anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] (the pipelines' `check_count`, for a float Gradio sent too), else a gr.Error."""
    try:
        check_count(name, whole(value), low, high)
    except ValueError as error:
        raise gr.Error(f"{name} must be a whole number between {low} and {high}, got {value!r}.") from error
    return whole(value)


def check_float(value: float | None, name: str, low: float, high: float) -> float:
    """A number input in [low, high], else a readable gr.Error."""
    if value is None or not low <= float(value) <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {value!r}.")
    return float(value)


def make_generator(seed: float | None) -> torch.Generator:
    """A generator on the app's device seeded from the seed box."""
    return torch.Generator(settings.DEVICE).manual_seed(check_int(seed, "Seed", 0, 2**63 - 1))


def batch_inputs(num_images: float, seed: float) -> dict[str, Any]:
    """The pipeline arguments ``batch_size`` and ``generator`` of the 'Number of images' and seed boxes."""
    return {
        "batch_size": check_int(num_images, "Number of images", 1, settings.MAX_BATCH),
        "generator": make_generator(seed),
    }


def scale_inputs(width_scale: float, height_scale: float) -> dict[str, float]:
    """The pipeline arguments ``width_scale`` and ``height_scale`` of the retargeting sliders."""
    return {
        "width_scale": check_float(width_scale, "Width scale", 0.25, 4.0),
        "height_scale": check_float(height_scale, "Height scale", 0.25, 4.0),
    }


def check_upload_size(image: Image.Image, name: str) -> None:
    """Refuse an image over MAX_UPLOAD_PIXELS (an opened file's size comes from its header, before decoding)."""
    if image.width * image.height > settings.MAX_UPLOAD_PIXELS:
        raise gr.Error(
            f"{name} is {image.width}x{image.height} px: too large (at most {settings.MAX_UPLOAD_PIXELS:,} px)."
        )


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
    image = image.convert("RGB")
    size = capped_size(image.width, image.height, MAX_PIXELS)
    if size == image.size:
        return image, ""
    note = f"{name} resized from {image.width}x{image.height} to {size[0]}x{size[1]} px (the {MAX_PIXELS:,} px budget)."
    return image.resize(size, Image.LANCZOS), note


def parse_box(values: Sequence[float | None], name: str) -> tuple[int, int, int, int]:
    """Four numbers (y, x, h, w) as an int box, or a readable error (whether it fits the image is the pipeline's
    check)."""
    if any(value is None for value in values):
        raise gr.Error(f"{name}: give all four numbers y, x, height, width (or click two corners on the image).")
    if not all(math.isfinite(float(value)) and abs(float(value)) <= settings.MAX_OUTPUT_SIDE * 4 for value in values):
        raise gr.Error(f"{name}: y, x, height and width must be finite pixel counts, got {tuple(values)}.")
    y, x, h, w = (int(value) for value in values)
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
