"""The top of the page: the model picker, and "Use your own image" (use_image), which makes an upload the model of
every tab: its training-free pipeline (`SinDDMPipeline.from_image`, the closed-form patch denoiser), no training."""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from . import models
from .gpu import GPU_SECONDS, on_gpu
from .inputs import open_image
from .widgets import example_path, readable_upload_errors


@on_gpu(GPU_SECONDS)
def use_image(image: Any) -> tuple[Any, str, Image.Image]:
    """Make an uploaded image the "model" of every tab: its training-free pipeline, no training.

    Returns (the model picker, now on the image's pipeline; a status line; the image as the pyramid sees it)."""
    picture, note = open_image(image, "Your image")
    name = models.image_pipeline(picture)
    pipe = models._images[name]
    sizes = " → ".join(f"{w}x{h}" for h, w in pipe.scheduler.config.scale_sizes)
    status = (
        f"Ready, no training: **{name}** is selected in the model box for every tab ({pipe.scheduler.num_scales} "
        f"scales, {sizes}). {note}"
    ).strip()
    return gr.update(choices=models.model_choices(), value=name), status, pipe.pyramid.pil(pipe.pyramid.num_scales - 1)


def layout(default_model: str | None) -> gr.Dropdown:
    """The upload and the model picker (starting on ``default_model``); returns the picker, every tab's input."""
    with gr.Row():
        own = readable_upload_errors(
            gr.Image(type="filepath", label="Use your own image (no training)", elem_id="own-image", scale=1)
        )
        with gr.Column(scale=2):
            model = gr.Dropdown(
                choices=models.model_choices(),
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
    return model
