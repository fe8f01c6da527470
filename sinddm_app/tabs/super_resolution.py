"""The Super-resolution tab (`SinDDMSuperResolutionPipeline`): an image upscaled 1.25x to 4x, its new detail the
training image's fine detail."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sinddm_pipeline import SinDDMSuperResolutionPipeline
from sinddm_pipeline.pipeline_sinddm_superres import MAX_UPSCALE_FACTOR, MIN_UPSCALE_FACTOR

from .. import image_tasks
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import check_float, open_image
from ..widgets import example_path, named_bounds, readable_upload_errors


@on_gpu(GPU_SECONDS)
def super_resolution(
    model: str,
    picture: Any,
    upscale_factor: float,
    tileable: bool,
    fast: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """The image (at most 50,000 px, as every tab takes uploads) upscaled by ``upscale_factor``; ``tileable``: an
    input that tiles stays seamless. Returns (results, the resize note)."""
    image, note = open_image(picture, "The image")
    factor = check_float(upscale_factor, "Upscale factor", MIN_UPSCALE_FACTOR, MAX_UPSCALE_FACTOR)
    results = image_tasks.run(
        SinDDMSuperResolutionPipeline, model, fast, num_images, seed, progress, "Upscaling",
        image=image, upscale_factor=factor, tileable=bool(tileable),
    )  # fmt: skip
    return results, note


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Super-resolution"):
        gr.Markdown(
            "Upload an image to upscale: the layout is the image's, the new fine detail the training image's. "
            "Works best on images like the training image."
        )
        picture = readable_upload_errors(gr.Image(type="filepath", label="Image to upscale"))
        with gr.Row():
            factor = named_bounds(
                gr.Slider(MIN_UPSCALE_FACTOR, MAX_UPSCALE_FACTOR, value=2.0, step=0.25, label="Upscale factor")
            )
            tileable = gr.Checkbox(value=False, label="Tileable (the input tiles: keep it seamless)")
        inputs, button, outputs = image_tasks.controls("Upscale", "super-resolution")
        inputs = [model, picture, factor, tileable, *inputs]
        button.click(super_resolution, inputs, outputs, api_name="super_resolution")
        if example_path("crop.png"):  # a crop of the shipped model's training image
            gr.Examples([[example_path("crop.png")]], [picture])
    return []
