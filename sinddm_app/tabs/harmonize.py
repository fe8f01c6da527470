"""The Harmonize tab: an object pasted into an image, blended in (the mask brushed on the composite or uploaded)."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from .. import img2img
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import open_image
from ..widgets import example_path, readable_upload_errors


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


@on_gpu(GPU_SECONDS)
def harmonize(
    model: str,
    composite: Any,
    mask_file: str | None,
    start_timestep: float,
    match_histogram: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Harmonize a pasted object: the composite from the editor, the mask brushed on it or uploaded (the pipeline
    refuses a mask that is black everywhere)."""
    background, brushed = editor_parts(composite)
    image, note = open_image(background, "The composite image")
    mask, _ = open_image(mask_file, "The mask", required=False)
    mask = mask if mask is not None else brushed
    if mask is None:
        raise gr.Error("Brush over the pasted object on the image, or upload a mask (white where it was pasted).")
    return img2img.img2img(model, image, mask, start_timestep, match_histogram, num_images, seed, progress), note


def layout(model: gr.Dropdown) -> list[gr.Image]:
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
        inputs, button, outputs = img2img.controls(start_timestep=5, match_histogram=False, action="Harmonize")
        button.click(harmonize, [model, composite, mask_file, *inputs], outputs, api_name="harmonize")
        if example_path("composite.png") and example_path("composite_mask.png"):
            gr.Examples([[example_path("composite.png"), example_path("composite_mask.png")]], [composite, mask_file])
    return []
