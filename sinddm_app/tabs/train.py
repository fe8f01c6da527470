"""The Train tab: train a small neural model on one image (`sinddm_pipeline.trainer.train`), then download it as a
zip or push it to the Hub (push_to_hub)."""

from __future__ import annotations

import shutil
from typing import Any

import gradio as gr
import torch
from PIL import Image

from sinddm_pipeline import SinDDMPipeline, trainer

from .. import files, models, settings
from ..errors import first_line, readable_errors
from ..gpu import on_gpu
from ..inputs import check_int, open_image
from ..widgets import example_path, readable_upload_errors


def training_gpu_seconds(image: Any, steps: float, *_: Any, **__: Any) -> int:
    """ZeroGPU duration of a training request: 60 s for loading and the sample grid, plus 40 ms per step (an H200
    trains the paper's dim-160, batch-32 model at ~28 ms per step, benchmarks/RESULTS.md), for at most
    MAX_TRAIN_STEPS steps."""
    try:
        count = min(max(int(steps), 1), settings.MAX_TRAIN_STEPS)
    except (TypeError, ValueError):
        count = settings.MAX_TRAIN_STEPS
    return int(60 + 0.04 * count)


@on_gpu(training_gpu_seconds)
def train(
    image: Any,
    steps: float,
    dim: float,
    batch_size: float,
    seed: float,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - follows the trainer's tqdm bar
) -> tuple[list, str, Image.Image | None, str, Any]:
    """Train a SinDDM model on one image with `trainer.train` in this thread (its tqdm bar drives the progress;
    `TrainingConfig` refuses an odd dim).

    Returns (samples, the model zip, the loss curve, a status line, the updated model picker)."""
    picture, note = open_image(image, "The training image")
    steps = check_int(steps, "Training steps", 1, settings.MAX_TRAIN_STEPS)
    dim = check_int(dim, "Model width (dim)", 4, 256)
    batch_size = check_int(batch_size, "Batch size", 1, 64)
    seed = check_int(seed, "Seed", 0, 2**31 - 1)
    run = files.new_folder("train_")
    output_dir = run / f"sinddm-{run.name.removeprefix('train_')}"
    progress(0, desc="Training")
    try:
        config = trainer.TrainingConfig(
            image_path=str(run / "image.png"),
            output_dir=str(output_dir),
            max_train_steps=steps,
            dim=dim,
            train_batch_size=batch_size,
            seed=seed,
            checkpointing_steps=settings.MAX_TRAIN_STEPS + 1,  # no checkpoints: the app never resumes
            ema_start=max(steps // 2, 1),
        )
        picture.save(config.image_path)
        trainer.train(config)
    except (ValueError, OSError) as error:
        shutil.rmtree(run, ignore_errors=True)
        raise gr.Error(f"Training failed: {first_line(error)}") from error
    name = f"trained/{output_dir.name}"
    models._trained[name] = str(output_dir)
    progress(1.0, desc="Sampling from the new model")
    pipe = models.request_pipeline(SinDDMPipeline, name)
    generator = torch.Generator(settings.DEVICE).manual_seed(seed)
    samples = pipe(batch_size=4, generator=generator, num_inference_steps=10).images
    curve = output_dir / "loss_curve.png"
    status = f"Trained {steps} steps; the model is **{name}** in the model list. {note}".strip()
    picker = gr.update(choices=models.model_choices(), value=name)
    return samples, files.zip_model(output_dir), Image.open(curve) if curve.is_file() else None, status, picker


@readable_errors
def push_to_hub(model: str, repo_id: str, token: str, private: bool) -> str:
    """Upload a trained model's folder to a Hub model repo; returns a status line."""
    if model not in models._trained:
        raise gr.Error("Train a model first (the Train tab): only models trained here can be pushed.")
    if not (repo_id or "").strip() or "/" not in repo_id:
        raise gr.Error("Give the Hub repo id as user/name.")
    if not (token or "").strip():
        raise gr.Error("Give a Hugging Face token with write access (https://huggingface.co/settings/tokens).")
    from sinddm_pipeline.hub import push_to_hub as push_folder

    try:  # the pipeline with a model card, sample grid and code for vanilla diffusers; checkpoints stay here
        push_folder(
            models._trained[model],
            repo_id.strip(),
            commit_message="Upload a SinDDM model trained in the SinDDM app",
            private=bool(private),
            token=token.strip(),
        )
    except Exception as error:  # offline, a bad token, no rights: one readable line
        raise gr.Error(f"Could not push to the Hub repo {repo_id!r}: {first_line(error)}") from error
    return f"Pushed to https://huggingface.co/{repo_id.strip()}"


def layout(model: gr.Dropdown) -> list[gr.Image]:
    with gr.Tab("Train"):
        gr.Markdown(
            "Train the neural model on one image (a few hundred steps give a rough model in minutes on a CPU; the "
            "paper trains 120,000). No training is needed to sample from an image: use *your own image* at the top. "
            "A trained model joins the model list; download it as a zip or push it to the Hub"
            + (f" (the app keeps it {settings.KEEP_HOURS:g} hours)." if settings.PRUNE_WORK_DIR else ".")
        )
        image = readable_upload_errors(gr.Image(type="filepath", label="Training image"))
        with gr.Row():
            max_steps = settings.MAX_TRAIN_STEPS
            steps = gr.Number(value=300, precision=0, minimum=1, maximum=max_steps, label="Training steps")
            dim = gr.Number(value=32, precision=0, minimum=4, maximum=256, label="Model width (dim, even)")
            batch = gr.Number(value=8, precision=0, minimum=1, maximum=64, label="Batch size")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
        button = gr.Button("Train", variant="primary")
        status = gr.Markdown()
        with gr.Row():
            samples = gr.Gallery(label="Samples of the new model (fast sampling)", columns=4, format="png")
            curve = gr.Image(label="Loss curve", type="pil")
        download = gr.File(label="The model (zip)")
        button.click(
            train,
            [image, steps, dim, batch, seed],
            [samples, download, curve, status, model],
            api_name="train",
            concurrency_limit=1,
        )
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                repo_id = gr.Textbox(label="Repo id (user/name)")
                token = gr.Textbox(label="Token (write access)", type="password")
                private = gr.Checkbox(value=False, label="Private")
            push = gr.Button("Push the selected trained model")
            pushed = gr.Markdown()
            push.click(push_to_hub, [model, repo_id, token, private], pushed, api_name="push_to_hub")
        if example_path("train.png"):
            gr.Examples([[example_path("train.png")]], [image])
    return []
