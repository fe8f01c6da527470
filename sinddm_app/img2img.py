"""What the Harmonize and Style transfer tabs share: their controls below the image inputs, and the image-to-image
call (`SinDDMImg2ImgPipeline`)."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from sinddm_pipeline import SinDDMImg2ImgPipeline

from . import models
from .inputs import batch_inputs, whole
from .progress import step_progress
from .widgets import seed_and_batch


def controls(start_timestep: int, match_histogram: bool, action: str) -> tuple[list, gr.Button, list]:
    """The start timestep, histogram matching, number of images and seed inputs, the ``action`` button, and the
    results gallery and note: returns (those inputs, the button, the outputs)."""
    with gr.Row():
        start = gr.Slider(1, 100, value=start_timestep, step=1, label="Start timestep (larger changes more)")
        match = gr.Checkbox(value=match_histogram, label="Match the training image's histogram first")
    num_images, seed = seed_and_batch(1)
    button = gr.Button(action, variant="primary")
    gallery = gr.Gallery(label="Results", columns=4, format="png")
    note = gr.Markdown()
    return [start, match, num_images, seed], button, [gallery, note]


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
    """Style transfer (no mask) or harmonization (a mask) of a checked image; the pipeline checks the start timestep
    and the mask."""
    batch = batch_inputs(num_images, seed)
    output = models.request_pipeline(SinDDMImg2ImgPipeline, model)(
        callback_on_step_end=step_progress(progress, "Denoising"),
        image=image,
        mask_image=mask,
        start_timestep=whole(start_timestep),
        match_histogram=bool(match_histogram),
        **batch,
    )
    return list(output.images)
