"""The Inpaint & outpaint tab (`SinDDMInpaintPipeline`): Inpaint (fill a brushed or uploaded hole) and Outpaint
(extend the image by margins), the rest of the image kept."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sinddm_pipeline import SinDDMInpaintPipeline
from sinddm_pipeline.pipeline_sinddm_inpaint import MARGINS, MAX_RESAMPLE_STEPS

from .. import image_tasks
from ..editor import editor_inputs, image_and_mask
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import check_int, open_image, whole
from ..widgets import example_path, named_bounds, readable_upload_errors


@on_gpu(GPU_SECONDS)
def inpaint(
    model: str,
    holed: Any,
    mask_file: str | None,
    resample_steps: float,
    fast: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Inpaint: fill the hole brushed on the image (or the uploaded mask, white there), with ``resample_steps``
    RePaint resamplings per coarsest-scale step. Returns (results, the resize note)."""
    missing = "Brush over the hole on the image, or upload a mask (white where the hole is)."
    image, mask, note = image_and_mask(holed, mask_file, "The image", missing)
    resample_steps = check_int(resample_steps, "Resample steps", 0, MAX_RESAMPLE_STEPS)
    results = image_tasks.run(
        SinDDMInpaintPipeline, model, fast, num_images, seed, progress, "Inpainting",
        image=image, mask_image=mask, resample_steps=resample_steps,
    )  # fmt: skip
    return results, note


@on_gpu(GPU_SECONDS)
def outpaint(
    model: str,
    picture: Any,
    top: float | None,
    bottom: float | None,
    left: float | None,
    right: float | None,
    fast: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Outpaint: the image (after the upload's resize, if any) extended by the margins in pixels, each in [0, the
    image's side] and not all 0 (the pipeline checks them). Returns (results, the resize note)."""
    image, note = open_image(picture, "The image")
    margins = {name: whole(value or 0) for name, value in zip(MARGINS, (top, bottom, left, right), strict=True)}
    if not any(margins.values()):
        raise gr.Error("Margins: give at least one of top, bottom, left, right above 0 (pixels to add).")
    results = image_tasks.run(
        SinDDMInpaintPipeline, model, fast, num_images, seed, progress, "Outpainting", image=image, **margins
    )
    return results, note


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Inpaint & outpaint"):
        with gr.Tab("Inpaint"):
            gr.Markdown(
                "Brush over a hole (something to remove) on the image, or upload a mask: it is filled with content "
                "like the training image's, the rest is kept. Resampling (RePaint) harmonises the fill further."
            )
            holed, mask_file = editor_inputs("Image (brush over the hole)", "Or a mask (white where the hole is)")
            resample = named_bounds(
                gr.Slider(0, MAX_RESAMPLE_STEPS, value=0, step=1, label="Resample steps", info="0: off; more: smoother")
            )
            inputs, button, outputs = image_tasks.controls("Inpaint", "inpaint")
            button.click(inpaint, [model, holed, mask_file, resample, *inputs], outputs, api_name="inpaint")
            if example_path("composite.png") and example_path("composite_mask.png"):  # a pasted patch to remove
                gr.Examples([[example_path("composite.png"), example_path("composite_mask.png")]], [holed, mask_file])
        with gr.Tab("Outpaint"):
            gr.Markdown(
                "Extend an image: the margins (pixels of the image as it is used: uploads over 50,000 px are "
                "resized first, see the note) are generated around it, the image is kept as it is."
            )
            picture = readable_upload_errors(gr.Image(type="filepath", label="Image"))
            with gr.Row():
                margins = [
                    named_bounds(gr.Number(value=value, precision=0, minimum=0, label=f"{name.capitalize()} margin"))
                    for name, value in zip(MARGINS, (0, 0, 0, 64), strict=True)
                ]
            inputs, button, outputs = image_tasks.controls("Outpaint", "outpaint")
            button.click(outpaint, [model, picture, *margins, *inputs], outputs, api_name="outpaint")
            if example_path("crop.png"):  # a crop of the shipped model's training image
                gr.Examples([[example_path("crop.png")]], [picture])
    return []
