"""The Paint & edit tab (SinGAN's injection tasks, `SinDDMPaintPipeline`): Paint to image (a rough painting becomes a
realistic image with its layout) and Edit (a brushed or uploaded region of an image regenerated to blend in)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sinddm_pipeline import SinDDMPaintPipeline

from .. import image_tasks, models
from ..editor import editor_inputs, image_and_mask
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import check_int, open_image
from ..widgets import example_path, named_bounds, readable_upload_errors

MAX_START_SCALE = 8
"""The start scale at most for any model (a model takes 1 to its number of scales - 1: 4 for the shipped one); the
sliders follow the chosen model (`last_start_scale`) and the pipeline says the model's range."""


def last_start_scale(name: str | None) -> int | None:
    """The model's last start scale (its number of scales - 1), or None when it cannot be loaded or has one scale."""
    try:
        last = models.load_pipeline(name).scheduler.num_scales - 1
    except gr.Error:
        return None
    return min(last, MAX_START_SCALE) if last >= 1 else None


def start_scale_ranges(name: str | None) -> tuple[Any, Any]:
    """The Paint and Edit start-scale sliders for the model ``name``: [1, its last start scale], back on their
    defaults (1 and 2); unchanged when the model cannot be loaded. A two-scale model takes start scale 1 only: the
    sliders show [1, 2] (Gradio needs a range) fixed on 1."""
    last = last_start_scale(name)
    if last is None:
        return gr.skip(), gr.skip()
    return tuple(
        gr.Slider(maximum=max(2, last), value=min(value, last), interactive=last > 1) for value in (1, 2)
    )


def start_scale_slider(value: int, last: int | None) -> gr.Slider:
    """The start scale slider of Paint to image and Edit, starting on ``value``, up to ``last`` (the model's last
    start scale; `MAX_START_SCALE` when unknown)."""
    last = MAX_START_SCALE if last is None else last
    return named_bounds(
        gr.Slider(
            1,
            max(2, last),  # Gradio needs a range: a two-scale model's slider is fixed on 1
            value=min(value, last),
            step=1,
            interactive=last > 1,
            label="Start scale",
            info="1: the most change; larger keeps more",
        )
    )


@on_gpu(GPU_SECONDS)
def paint(
    model: str,
    painting: Any,
    start_scale: float,
    fast: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Paint to image: the painting, injected at ``start_scale`` (the pipeline checks it against the model's scales),
    becomes an image with its layout, as many pixels as the training image. Returns (results, the resize note)."""
    image, note = open_image(painting, "The painting")
    start_scale = check_int(start_scale, "Start scale", 1, MAX_START_SCALE)
    results = image_tasks.run(
        SinDDMPaintPipeline, model, fast, num_images, seed, progress, "Painting", image=image, start_scale=start_scale
    )
    return results, note


@on_gpu(GPU_SECONDS)
def edit(
    model: str,
    edited: Any,
    mask_file: str | None,
    start_scale: float,
    fast: bool,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, str]:
    """Edit: the region brushed on the image (or the uploaded mask, white there) regenerated from ``start_scale`` so
    that it blends in; pixels farther than 8 px from it are kept. Returns (results, the resize note)."""
    missing = "Brush over the edited region on the image, or upload a mask (white where it is)."
    image, mask, note = image_and_mask(edited, mask_file, "The edited image", missing)
    start_scale = check_int(start_scale, "Start scale", 1, MAX_START_SCALE)
    results = image_tasks.run(
        SinDDMPaintPipeline, model, fast, num_images, seed, progress, "Editing",
        image=image, mask_image=mask, start_scale=start_scale,
    )  # fmt: skip
    return results, note


def layout(model: gr.Dropdown) -> list[gr.Image]:
    last = last_start_scale(model.value)
    with gr.Tab("Paint & edit"):
        with gr.Tab("Paint to image"):
            gr.Markdown(
                "Upload a rough painting or clip-art in the training image's colours: it becomes a realistic image "
                "with its layout. A larger start scale keeps more of the painting."
            )
            painting = readable_upload_errors(gr.Image(type="filepath", label="Painting"))
            paint_start = start_scale_slider(1, last)
            inputs, button, outputs = image_tasks.controls("Paint to image", "paint")
            button.click(paint, [model, painting, paint_start, *inputs], outputs, api_name="paint")
            if example_path("painting.png"):  # a dark sky with a few galaxies, in the shipped model's colours
                gr.Examples([[example_path("painting.png")]], [painting])
        with gr.Tab("Edit"):
            gr.Markdown(
                "Upload an image you changed (content pasted or moved) and brush over the changed region, or upload "
                "a mask: the region is regenerated so that it blends in, the rest is kept."
            )
            edited, mask_file = editor_inputs(
                "Edited image (brush over the changed region)", "Or a mask (white where the region is)"
            )
            edit_start = start_scale_slider(2, last)
            inputs, button, outputs = image_tasks.controls("Edit", "edit")
            button.click(edit, [model, edited, mask_file, edit_start, *inputs], outputs, api_name="edit")
            if example_path("composite.png") and example_path("composite_mask.png"):  # a pasted patch to blend in
                gr.Examples([[example_path("composite.png"), example_path("composite_mask.png")]], [edited, mask_file])
    model.change(start_scale_ranges, model, [paint_start, edit_start], api_visibility="private")
    return []
