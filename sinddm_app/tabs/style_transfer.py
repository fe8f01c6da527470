"""The Style transfer tab: a content image redrawn with the training image's patches."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import img2img
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import open_image
from ..widgets import example_path, readable_upload_errors


@on_gpu(GPU_SECONDS)
def style_transfer(
    model: str,
    content: Any,
    start_timestep: float,
    match_histogram: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """A content image redrawn with the training image's patches."""
    image, note = open_image(content, "The content image")
    return img2img.img2img(model, image, None, start_timestep, match_histogram, num_images, seed, progress), note


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Style transfer"):
        gr.Markdown("Upload a content image: it is redrawn with the training image's patches.")
        content = readable_upload_errors(gr.Image(type="filepath", label="Content image"))
        inputs, button, outputs = img2img.controls(start_timestep=15, match_histogram=True, action="Transfer")
        button.click(style_transfer, [model, content, *inputs], outputs, api_name="style_transfer")
        if example_path("content.png"):
            gr.Examples([[example_path("content.png")]], [content])
    return []
