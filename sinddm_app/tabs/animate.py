"""The Animate tab (`SinDDMAnimationPipeline`): a short looping GIF, a smooth closed walk in the noise of the coarse
scales (`sinddm_pipeline.animation_export.export_animation` writes it)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sinddm_pipeline import SinDDMAnimationPipeline, export_animation

from .. import files, image_tasks, models
from ..gpu import GPU_SECONDS, on_gpu
from ..inputs import check_float, check_int, make_generator
from ..progress import step_progress
from ..widgets import named_bounds

MAX_APP_FRAMES = 48
"""Frames of one animation in the app at most (the pipeline takes up to 240)."""
MIN_VARIATION, MAX_VARIATION = 0.05, 2.0
MAX_APP_FPS = 30


def animation_gpu_seconds(model: str, num_frames: Any, *_: Any, **__: Any) -> int:
    """ZeroGPU duration of an animation: the Generate tab's budget plus 1 s per frame (a generous guess: frames are
    denoised ~20 at a time), for at most MAX_APP_FRAMES frames."""
    try:
        count = min(max(int(num_frames), 2), MAX_APP_FRAMES)
    except (TypeError, ValueError):
        count = MAX_APP_FRAMES
    return GPU_SECONDS + count


@on_gpu(animation_gpu_seconds)
def animate(
    model: str,
    num_frames: float,
    variation: float,
    fps: float,
    tileable: bool,
    fast: bool,
    seed: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> tuple[str, str]:
    """A looping animation of ``num_frames`` frames (``variation``: how much they differ; the pipeline checks both)
    as a GIF at ``fps``; ``tileable``: every frame tiles. Returns (the GIF to show, the GIF to download)."""
    num_frames = check_int(num_frames, "Number of frames", 2, MAX_APP_FRAMES)
    variation = check_float(variation, "Variation", MIN_VARIATION, MAX_VARIATION)
    fps = check_float(fps, "Frames per second", 1, MAX_APP_FPS)
    generator = make_generator(seed)
    pipe = models.task_pipeline(SinDDMAnimationPipeline, model, bool(fast))
    frames = pipe(
        num_frames=num_frames,
        variation=variation,
        tileable=bool(tileable),
        generator=generator,
        callback_on_step_end=step_progress(progress, "Animating"),
    ).frames
    path = str(export_animation(frames, files.new_folder("animation_") / "animation.gif", fps=fps))
    return path, path


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Animate"):
        gr.Markdown(
            "A short looping animation: the frames walk a closed loop in the noise of the coarse scales, so the "
            "layout drifts and comes back. Larger variation: frames differ more."
        )
        with gr.Row():
            num_frames = named_bounds(gr.Slider(2, MAX_APP_FRAMES, value=16, step=1, label="Number of frames"))
            variation = named_bounds(gr.Slider(MIN_VARIATION, MAX_VARIATION, value=0.5, step=0.05, label="Variation"))
            fps = named_bounds(gr.Slider(1, MAX_APP_FPS, value=10, step=1, label="Frames per second"))
        with gr.Row():
            tileable = gr.Checkbox(value=False, label="Tileable (every frame tiles without seams)")
            fast = image_tasks.fast_checkbox("animate-fast")
            seed = named_bounds(gr.Number(value=0, precision=0, minimum=0, label="Seed"))
        button = gr.Button("Animate", variant="primary", elem_id="animate-button")
        with gr.Row():
            shown = gr.Image(label="Animation (GIF)", type="filepath", interactive=False, elem_id="animate-gif")
            download = gr.File(label="Download (GIF)")
        inputs = [model, num_frames, variation, fps, tileable, fast, seed]
        button.click(animate, inputs, [shown, download], api_name="animate")
    return []
