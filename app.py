"""SinDDM web app (Gradio): `python app.py`, then open the printed address. Also a Hugging Face Space entry point.

Starts offline on the model shipped in `models/`; the model box also takes any pipeline folder or Hub repo id.
Host and port follow Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT environment variables.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import torch

from sinddm_pipeline import SinDDMPipeline

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "hubble-sinddm"
MAX_BATCH = 8
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

_pipelines: dict[str, SinDDMPipeline] = {}
_lock = threading.Lock()


def shipped_models() -> list[str]:
    """Names of the pipeline folders shipped in models/."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "model_index.json").is_file())


def resolve_model(name: str) -> str:
    """A shipped model's folder, or the given folder / Hub repo id as it is."""
    name = (name or "").strip()
    if not name:
        raise gr.Error("Choose a model: a shipped one, a pipeline folder or a Hub repo id (user/name).")
    shipped = MODELS_DIR / name
    return str(shipped) if (shipped / "model_index.json").is_file() else name


def load_pipeline(name: str) -> SinDDMPipeline:
    """Load (once) and cache the pipeline of a model name, with a readable error when it cannot be loaded."""
    location = resolve_model(name)
    with _lock:
        if location not in _pipelines:
            try:
                pipe = SinDDMPipeline.from_pretrained(location).to(DEVICE)
            except Exception as error:  # any loading failure becomes a message in the UI
                raise gr.Error(f"Cannot load the model {name!r}: {error}") from error
            pipe.set_progress_bar_config(disable=True)
            _pipelines[location] = pipe
        return _pipelines[location]


def generate(
    model: str,
    num_images: float,
    seed: float,
    width_scale: float,
    height_scale: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress tracker
) -> list:
    """Generate images; returns the gallery items."""
    if num_images is None or not 1 <= int(num_images) <= MAX_BATCH:
        raise gr.Error(f"Number of images must be between 1 and {MAX_BATCH}.")
    if seed is None or not 0 <= int(seed) < 2**63:
        raise gr.Error("The seed must be an integer >= 0.")
    pipe = load_pipeline(model)
    progress(0, desc="Generating")
    generator = torch.Generator(DEVICE).manual_seed(int(seed))
    try:
        images = pipe(
            batch_size=int(num_images),
            generator=generator,
            width_scale=float(width_scale),
            height_scale=float(height_scale),
        ).images
    except ValueError as error:
        raise gr.Error(str(error)) from error
    return [(image, f"seed {int(seed)} #{index}") for index, image in enumerate(images)]


def build_demo() -> gr.Blocks:
    models = shipped_models()
    with gr.Blocks(title="SinDDM") as demo:
        gr.Markdown(
            "# SinDDM\nA diffusion model trained on **one** image generates new images like it, at any size. "
            "Pick a shipped model, a pipeline folder or a Hub repo id."
        )
        model = gr.Dropdown(
            choices=models,
            value=DEFAULT_MODEL if DEFAULT_MODEL in models else None,
            label="Model",
            allow_custom_value=True,
        )
        with gr.Tab("Generate"):
            with gr.Row():
                num_images = gr.Slider(1, MAX_BATCH, value=2, step=1, label="Number of images")
                seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                width_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Width scale (retargeting)")
                height_scale = gr.Slider(0.5, 3.0, value=1.0, step=0.05, label="Height scale (retargeting)")
            button = gr.Button("Generate", variant="primary")
            gallery = gr.Gallery(label="Samples", columns=4, format="png")
            button.click(generate, [model, num_images, seed, width_scale, height_scale], gallery, api_name="generate")
    return demo


if __name__ == "__main__":
    build_demo().queue(default_concurrency_limit=2).launch()
