"""What the tabs of the single-image tasks share (Paint to image, Edit, Inpaint, Outpaint, Super-resolution): their
controls below the task's own inputs, and the call of a task pipeline on a checked image.

Fast sampling: the Generate tab's checkbox, off by default (exact for a trained model; a model of an uploaded image
is training-free and fast either way); on: the settings measured fastest here (`models.fast_request_pipeline`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import models
from .inputs import batch_inputs
from .progress import step_progress
from .widgets import seed_and_batch


def fast_checkbox(elem_id: str) -> gr.Checkbox:
    """The "Fast sampling" checkbox of a task tab (off: exact sampling of a trained model)."""
    return gr.Checkbox(value=False, label="Fast sampling (measured fastest here, second-order solver)", elem_id=elem_id)


def controls(action: str, name: str) -> tuple[list, gr.Button, list]:
    """Fast sampling, number of images and seed, the ``action`` button and the results gallery and note, with
    element ids ``{name}-fast``, ``{name}-button`` and ``{name}-gallery``. Returns (those inputs, the button, the
    outputs)."""
    fast = fast_checkbox(f"{name}-fast")
    num_images, seed = seed_and_batch(1)
    button = gr.Button(action, variant="primary", elem_id=f"{name}-button")
    gallery = gr.Gallery(label="Results", columns=4, format="png", elem_id=f"{name}-gallery")
    note = gr.Markdown()
    return [fast, num_images, seed], button, [gallery, note]


def run(
    cls: type, model: str, fast: bool, num_images: float, seed: float, progress: gr.Progress, desc: str, **task: Any
) -> list:
    """``cls``'s pipeline of the model (fast or exact) called with the task's arguments ``task`` (the pipeline
    checks them: its ValueError reaches the UI as one line), ``num_images`` results from ``seed``; returns the
    gallery's (image, caption) pairs."""
    pipe = models.task_pipeline(cls, model, bool(fast))
    images = pipe(callback_on_step_end=step_progress(progress, desc), **batch_inputs(num_images, seed), **task).images
    return [(image, f"seed {int(seed)} #{i}") for i, image in enumerate(images)]
