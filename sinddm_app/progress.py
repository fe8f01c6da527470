"""Task progress in the UI from the pipelines' own ``callback_on_step_end`` (diffusers' signature)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr


def step_progress(progress: gr.Progress, desc: str) -> Callable:
    """A ``callback_on_step_end`` that reports every denoising step to ``progress`` (the pipeline's
    ``num_timesteps`` is the total)."""
    progress(0, desc=desc)

    def callback(pipe: Any, step_index: int, timestep: int, callback_kwargs: dict) -> dict:
        total, done = max(int(pipe.num_timesteps or 1), 1), step_index + 1
        progress(min(done / total, 1.0), desc=f"{desc} ({done}/{total} steps)")
        return {}

    return callback
