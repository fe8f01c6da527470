"""The ROI generation tab: a region of the training image (the source box) copied into target boxes of the output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gradio as gr
from PIL import Image, ImageDraw

from sinddm_pipeline import SinDDMPipeline

from .. import models
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import batch_inputs, parse_box, parse_boxes, scale_inputs
from ..progress import step_progress
from ..widgets import box_inputs, clickable_training_image, seed_and_batch


def draw_boxes(image: Image.Image, boxes: Iterable[Sequence[int]], color: str = "red") -> Image.Image:
    """A copy of ``image`` with the (y, x, h, w) boxes outlined."""
    image = image.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    for y, x, h, w in boxes:
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=color, width=2)
    return image


@on_gpu(GPU_SECONDS)
def roi_generate(
    model: str,
    src_y: float | None,
    src_x: float | None,
    src_h: float | None,
    src_w: float | None,
    target_boxes: str,
    width_scale: float,
    height_scale: float,
    num_images: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, Image.Image]:
    """ROI-guided generation: the source box of the training image appears in each target box of the output (the
    pipeline checks that the boxes lie in their images). Returns (images, the training image with the source box
    outlined)."""
    source = parse_box((src_y, src_x, src_h, src_w), "Source box")
    targets = parse_boxes(target_boxes)
    batch, scales = batch_inputs(num_images, seed), scale_inputs(width_scale, height_scale)
    images = models.request_pipeline(SinDDMPipeline, model)(
        callback_on_step_end=step_progress(progress, "ROI-guided sampling"),
        roi_source_box=source,
        roi_target_boxes=targets,
        **batch,
        **scales,
    ).images
    outlined = [(draw_boxes(image, targets), f"#{i} (targets outlined)") for i, image in enumerate(images)]
    training = models.training_image(model) or images[0]
    return [(image, f"#{i}") for i, image in enumerate(images)] + outlined, draw_boxes(training, [source], "yellow")


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("ROI generation"):
        gr.Markdown(
            "Copy a region of the training image (the source box: numbers, or click two corners on the image) into "
            'target boxes of the output, written as "y, x, height, width" with ";" between boxes.'
        )
        source = box_inputs("Source", (60, 60, 60, 60))
        targets = gr.Textbox(value="10, 10, 60, 60; 10, 150, 60, 60", label="Target boxes (pixels of the output)")
        with gr.Row():
            width_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Width scale")
            height_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Height scale")
        num_images, seed = seed_and_batch(1)
        picture = clickable_training_image("Training image (click two corners for the source box)", source)
        button = gr.Button("Generate with ROI", variant="primary")
        gallery = gr.Gallery(label="Results (and with the target boxes outlined)", columns=4, format="png")
        inputs = [model, *source, targets, width_scale, height_scale, num_images, seed]
        button.click(roi_generate, inputs, [gallery, picture], api_name="roi_generate")
    return [picture]
