"""The page: the model picker on top, then the tabs of `TABS`, in order (adding a tab: one module in
`sinddm_app/tabs/` with ``layout`` and its handlers, and one line here)."""

from __future__ import annotations

import gradio as gr
from PIL import Image

from . import models, picker, settings
from .tabs import animate, generate, harmonize, inpaint, paint, roi, style_transfer, super_resolution, text_edit, train

TABS = (
    generate,
    text_edit,
    harmonize,
    style_transfer,
    roi,
    paint,
    inpaint,
    super_resolution,
    animate,
    train,
)
"""The tab modules, in page order (see `sinddm_app.tabs`)."""


def build_demo(default_model: str | None = None) -> gr.Blocks:
    """The app: a model picker (starting on ``default_model``, the shipped model by default) and one tab per task."""
    if default_model is None:
        default_model = settings.DEFAULT_MODEL if settings.DEFAULT_MODEL in models.model_choices() else None
    # delete_cache: Gradio's copies of outputs older than KEEP_HOURS go, checked hourly
    with gr.Blocks(title="SinDDM", delete_cache=(3600, int(settings.KEEP_HOURS * 3600))) as demo:
        gr.Markdown(
            "# SinDDM\nA diffusion model of **one** image generates new images like it, at any size. Use your own "
            "image (no training: a closed-form patch denoiser, samples in seconds), or pick a shipped model or a Hub "
            "repo id."
        )
        model = picker.layout(default_model)
        pictures = [picture for tab in TABS for picture in tab.layout(model)]

        def show_training_image(name: str) -> list[Image.Image | None]:
            """The model's training image in every tab that shows it (nothing when it cannot be loaded)."""
            return [models.training_image(name)] * len(pictures)

        if pictures:
            model.change(show_training_image, model, pictures, api_visibility="private")
            demo.load(show_training_image, model, pictures, api_visibility="private")
    return demo
