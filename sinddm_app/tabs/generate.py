"""The Generate tab: random samples, retargeted by scales or to an exact size, exact or fast (the settings a probe
measured fastest here), optionally tileable (seamless textures)."""

from __future__ import annotations

import gradio as gr

from sinddm_pipeline import SinDDMPipeline

from .. import files, models, settings
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import batch_inputs, check_int, scale_inputs
from ..progress import step_progress
from ..widgets import seed_and_batch


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
    tileable: bool = False,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Random samples, optionally retargeted (scales, or an exact width / height; 0 keeps the scale), fast (the
    settings measured best here; ``fast_steps`` per scale, 0: the measured fast steps) and tileable (seamless)."""
    batch = batch_inputs(num_images, seed)
    scales = scale_inputs(width_scale, height_scale)
    width = check_int(width or 0, "Width", 0, settings.MAX_OUTPUT_SIDE) or None
    height = check_int(height or 0, "Height", 0, settings.MAX_OUTPUT_SIDE) or None
    steps = (check_int(fast_steps, "Fast sampling steps", 0, 1000) or None) if fast else None
    if steps == 1:
        raise gr.Error("Fast sampling steps must be 0 (the measured fast steps) or at least 2 per scale.")
    # fast: the probe's settings, strided steps with the second-order solver (it keeps the fine scales' quality)
    pipe = models.fast_request_pipeline(model) if fast else models.request_pipeline(SinDDMPipeline, model)
    images = pipe(
        callback_on_step_end=step_progress(progress, "Generating"),
        width=width,
        height=height,
        num_inference_steps=steps,
        tileable=bool(tileable),
        **batch,
        **scales,
    ).images
    return [(image, f"seed {int(seed)} #{i}") for i, image in enumerate(images)], files.zip_images(images, "samples")


def layout(model: gr.Dropdown) -> list[gr.Image]:
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
            tileable = gr.Checkbox(value=False, label="Tileable (tiles without seams)", elem_id="generate-tileable")
        button = gr.Button("Generate", variant="primary", elem_id="generate-button")
        gallery = gr.Gallery(label="Samples", columns=4, format="png", elem_id="generate-gallery")
        download = gr.File(label="Download (zip of PNGs)")
        inputs = [model, num_images, seed, width_scale, height_scale, width, height, fast, fast_steps, tileable]
        button.click(generate, inputs, [gallery, download], api_name="generate")
        default = settings.DEFAULT_MODEL
        gr.Examples(
            [[default, 4, 0, 2.0, 1.0, 0, 0, True, 0, False], [default, 2, 1, 1.0, 1.0, 320, 160, True, 0, False]],
            inputs,
            outputs=[gallery, download],
            fn=generate,
            cache_examples=True,
            cache_mode="lazy",  # computed on the first click, then served from the cache
            label="Examples (a panorama; an exact size)",
            elem_id="generate-examples",
        )
    return []
