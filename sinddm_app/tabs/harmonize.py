"""The Harmonize tab: an object pasted into an image, blended in (the mask brushed on the composite or uploaded)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import img2img
from ..editor import editor_inputs, image_and_mask
from ..gpu import GPU_SECONDS, on_gpu
from ..widgets import example_path


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
    missing = "Brush over the pasted object on the image, or upload a mask (white where it was pasted)."
    image, mask, note = image_and_mask(composite, mask_file, "The composite image", missing)
    return img2img.img2img(model, image, mask, start_timestep, match_histogram, num_images, seed, progress), note


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Harmonize"):
        gr.Markdown("Upload a composite (an object pasted into an image) and brush over the object, or upload a mask.")
        composite, mask_file = editor_inputs(
            "Composite (brush over the pasted object)", "Or a mask (white where the object is)"
        )
        inputs, button, outputs = img2img.controls(start_timestep=5, match_histogram=False, action="Harmonize")
        button.click(harmonize, [model, composite, mask_file, *inputs], outputs, api_name="harmonize")
        if example_path("composite.png") and example_path("composite_mask.png"):
            gr.Examples([[example_path("composite.png"), example_path("composite_mask.png")]], [composite, mask_file])
    return []
