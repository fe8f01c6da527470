"""Small layout pieces that several tabs share: seed and batch boxes, box inputs filled by two clicks, example files,
image uploads whose non-image files give a readable message, and number inputs whose out-of-bounds values are
refused naming the input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from . import settings


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


def named_bounds(component: gr.Slider | gr.Number) -> gr.Slider | gr.Number:
    """Make a number input's out-of-bounds value (a script can send any number) give a gr.Error that names the
    input (its label up to a parenthesis): "Upscale factor: Value 5 is greater than maximum value 4." instead of
    Gradio's bare "Value 5 is ...". (The instance's method is wrapped, as in `readable_upload_errors`.)"""
    preprocess = component.preprocess
    name = (component.label or "A number").split(" (")[0]

    def checked(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error as error:
            raise gr.Error(f"{name}: {error.message}") from error

    component.preprocess = checked
    return component


def seed_and_batch(default_batch: int = 2) -> tuple[gr.Slider, gr.Number]:
    """The 'Number of images' slider and the seed box of a tab (out-of-bounds values are refused naming them)."""
    with gr.Row():
        batch = named_bounds(gr.Slider(1, settings.MAX_BATCH, value=default_batch, step=1, label="Number of images"))
        seed = named_bounds(gr.Number(value=0, precision=0, minimum=0, label="Seed"))
    return batch, seed


def box_inputs(label: str, box: Sequence[int] = (20, 20, 40, 40)) -> list[gr.Number]:
    """Four number boxes y, x, height, width, starting on ``box``."""
    parts = ("y", "x", "height", "width")
    with gr.Row():
        return [
            gr.Number(value=value, precision=0, label=f"{label} {part}") for part, value in zip(parts, box, strict=True)
        ]


def click_box(image: Image.Image | None, corner: tuple | None, evt: gr.SelectData) -> tuple:
    """Two clicks on an image give a box: the first sets a corner, the second the opposite one.

    Returns (corner state, y, x, h, w) with the numbers unchanged (gr.update()) after the first click."""
    x, y = (int(v) for v in evt.index[:2])
    if corner is None:
        return (y, x), gr.update(), gr.update(), gr.update(), gr.update()
    y0, x0 = corner
    top, left = min(y, y0), min(x, x0)
    return None, top, left, abs(y - y0) + 1, abs(x - x0) + 1


def clickable_training_image(label: str, boxes: list[gr.Number]) -> gr.Image:
    """The training image, read-only, where two clicks fill the four ``boxes`` (y, x, height, width)."""
    with gr.Row():
        picture = gr.Image(label=label, interactive=False)
        corner = gr.State(None)
    picture.select(click_box, [picture, corner], [corner, *boxes])
    return picture


def example_path(name: str) -> str | None:
    """An example image shipped in examples/app/, or None when absent."""
    path = settings.EXAMPLES_DIR / name
    return str(path) if path.is_file() else None
