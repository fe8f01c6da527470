"""The Text edit tab: CLIP-guided generation or editing of content, style, style transfer or a region (ROI)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL, MODE_SETTINGS, MODES, SinDDMCLIPPipeline

from .. import models
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import batch_inputs, check_int, parse_box
from ..progress import step_progress
from ..widgets import box_inputs, clickable_training_image, seed_and_batch


@on_gpu(GPU_SECONDS)
def text_edit(
    model: str,
    clip_name: str,
    prompt: str,
    mode: str,
    strength: float,
    fill_factor: float,
    roi_y: float | None,
    roi_x: float | None,
    roi_h: float | None,
    roi_w: float | None,
    num_images: float,
    seed: float,
    num_augmentations: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[list, list]:
    """CLIP-guided generation or editing; returns (images, guidance masks). The pipeline checks the mode, the
    strength and fill factor (in [0, 1]) and that the ROI box lies in the training image."""
    if not (prompt or "").strip():
        raise gr.Error("Write a prompt: what the image should show, e.g. 'fire in the forest'.")
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "mode": mode,
        "strength": strength,
        "num_augmentations": check_int(num_augmentations, "CLIP views", 1, 64),
        **batch_inputs(num_images, seed),
    }
    if mode == "roi":
        kwargs["roi_box"] = parse_box((roi_y, roi_x, roi_h, roi_w), "ROI box")
    else:
        kwargs["fill_factor"] = fill_factor
    models.load_pipeline(model)  # a bad model is reported before CLIP is loaded
    clip_model, tokenizer = models.load_clip(clip_name)
    pipe = models.request_pipeline(SinDDMCLIPPipeline, model, clip_model=clip_model, tokenizer=tokenizer)
    output = pipe(callback_on_step_end=step_progress(progress, "Text-guided sampling"), **kwargs)
    return list(output.images), list(output.masks)


def mode_defaults(mode: str) -> tuple[Any, Any]:
    """The strength and fill factor sliders set to the mode's defaults."""
    defaults = MODE_SETTINGS.get(mode)
    if defaults is None:
        return gr.update(), gr.update()
    fill = defaults.fill_factor if defaults.fill_factor is not None else 0.5
    return gr.update(value=defaults.strength), gr.update(value=fill, interactive=mode != "roi")


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Text edit"):
        gr.Markdown(
            "CLIP-guided generation. The CLIP box takes a Hub id (needs internet) or a local folder holding a saved "
            "CLIPModel and tokenizer. For mode *roi*, give the box or click two corners on the training image."
        )
        with gr.Row():
            clip_name = gr.Textbox(value=DEFAULT_CLIP_MODEL, label="CLIP model (Hub id or folder)")
            prompt = gr.Textbox(value="fire in the forest", label="Prompt")
            mode = gr.Dropdown(list(MODES), value="content", label="Mode")
        with gr.Row():
            strength = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Strength")
            fill_factor = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Fill factor")
            views = gr.Slider(1, 32, value=8, step=1, label="CLIP views (augmentations)")
        num_images, seed = seed_and_batch(1)
        roi = box_inputs("ROI")
        picture = clickable_training_image("Training image (click two corners for the ROI)", roi)
        button = gr.Button("Edit", variant="primary")
        with gr.Row():
            images = gr.Gallery(label="Results", columns=4, format="png")
            masks = gr.Gallery(label="Guidance masks (white: where CLIP acted)", columns=4, format="png")
        mode.change(mode_defaults, mode, [strength, fill_factor])
        inputs = [model, clip_name, prompt, mode, strength, fill_factor, *roi, num_images, seed, views]
        button.click(text_edit, inputs, [images, masks], api_name="text_edit")
    return [picture]
