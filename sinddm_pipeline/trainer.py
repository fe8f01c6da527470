"""Train a SinDDM model on one image: `train(config)`, the loop that `train_sinddm.py` and the app's Train tab run.

The loop follows diffusers' `train_unconditional.py`: an `Accelerator` (mixed precision, several processes),
`accelerator.save_state` checkpoints that `resume_from_checkpoint="latest"` continues exactly, EMA weights, and at
the end the output folder is a ready pipeline of the EMA weights (optionally pushed to the Hub with a model card).
Under `accelerate launch` or `torchrun`, the processes split the global batch (data parallel).

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from sinddm_pipeline.trainer import TrainingConfig, train
    >>> folder = tempfile.mkdtemp()
    >>> Image.radial_gradient("L").convert("RGB").resize((88, 51)).save(f"{folder}/image.png")
    >>> config = TrainingConfig(image_path=f"{folder}/image.png", output_dir=f"{folder}/out", max_train_steps=2,
    ...                         dim=8, train_batch_size=2)
    >>> pipe = train(config)  # a few seconds on a CPU; the paper trains 120,000 steps of dim 160
    >>> pipe.denoiser.config.dim, pipe.scheduler.num_scales
    (8, 2)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from .image_io import load_training_image
from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel
from .pipeline_sinddm import SinDDMPipeline
from .pyramid import Pyramid, build_pyramid
from .scheduling_sinddm import SinDDMScheduler
from .training import EMA, TrainingData, training_loss
from .training_config import TrainingConfig
from .training_state import (
    GeneratorState,
    StepSeededGenerator,
    check_output_dir,
    check_writable,
    checkpoint_step,
    clear_previous_run,
    find_checkpoint,
    prune_checkpoints,
    pyramid_digest,
    read_training_state,
    resumed_loss_log,
    save_checkpoint_atomically,
    save_pipeline_atomically,
    write_loss_log,
    write_training_state,
)

__all__ = ["TrainingConfig", "train"]

logger = logging.getLogger(__name__)


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The Accelerator of this process.

    Under a multi-process launcher (accelerate launch --multi_gpu, torchrun) on a machine without CUDA, Accelerator()
    silently runs independent single-process copies unless told to use the CPU; cpu=True makes it join the gloo
    process group (checked by tests/test_train_script.py).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = not torch.cuda.is_available()
    return Accelerator(
        mixed_precision=config.mixed_precision,
        dynamo_backend="inductor" if config.compile else "no",
        log_with=config.report_to,
        project_config=ProjectConfiguration(project_dir=config.output_dir),
        cpu=cpu and world_size > 1,
    )


def prepare_output_dir(config: TrainingConfig, accelerator: Accelerator) -> str | None:
    """Check (on every process) and create the output folder; return the checkpoint to resume from, if any.

    A folder that holds a model is refused unless resuming from one of its checkpoints or ``overwrite`` (which
    first removes the old run's checkpoints and loss log, so they are never resumed or pruned by mistake).
    """
    checkpoint = None
    if config.resume_from_checkpoint:
        checkpoint = find_checkpoint(config.output_dir, config.resume_from_checkpoint)
        if checkpoint is None:
            accelerator.print(f"No checkpoint found for {config.resume_from_checkpoint!r}; starting a new run.")
    check_output_dir(config.output_dir, overwrite=config.overwrite, resuming=checkpoint is not None)
    accelerator.wait_for_everyone()  # every process checked before the main one writes anything
    if accelerator.is_main_process:
        if config.overwrite and checkpoint is None:
            clear_previous_run(config.output_dir)
        os.makedirs(config.output_dir, exist_ok=True)
    accelerator.wait_for_everyone()
    check_writable(config.output_dir)  # before step 1: a run that cannot save is refused, not trained
    return checkpoint


def save_checkpoint(
    accelerator: Accelerator,
    config: TrainingConfig,
    step: int,
    losses: list[tuple[int, float]],
    pipeline: SinDDMPipeline,
    write_state=None,
) -> None:
    """Write `checkpoint-<step>` (every process; ``write_state(folder)`` adds this project's training state), then
    keep the folder a ready pipeline of this step with its loss log and prune old checkpoints (main process)."""
    save_checkpoint_atomically(accelerator, config.output_dir, step, losses, write_state)
    if accelerator.is_main_process:
        write_loss_log(config.output_dir, losses)
        save_pipeline_atomically(pipeline, config.output_dir)
        if config.checkpoints_total_limit:
            prune_checkpoints(config.output_dir, config.checkpoints_total_limit)


def local_batch_size(config: TrainingConfig, num_processes: int) -> int:
    """The batch of one process: ``train_batch_size`` is the global batch, split evenly over the processes."""
    if config.train_batch_size % num_processes:
        raise ValueError(
            f"train_batch_size ({config.train_batch_size}) must be divisible by the number of processes "
            f"({num_processes}): it is the global batch."
        )
    return config.train_batch_size // num_processes


def weights_digest(model: torch.nn.Module) -> str:
    """A short SHA-256 of the model's weights: equal on every process of a data-parallel run."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def time_is_up(accelerator: Accelerator, start_time: float, minutes: float) -> bool:
    """Whether ``minutes`` have passed since ``start_time`` on any process (all processes agree, so that they stop
    at the same step)."""
    up = torch.tensor([float(time.time() - start_time >= 60 * minutes)], device=accelerator.device)
    return bool(accelerator.reduce(up, reduction="sum").item() > 0)


def tracker_config(config: TrainingConfig) -> dict:
    """The public options as tracker hyper-parameters (scalars and strings only)."""

    def scalar(value):
        if isinstance(value, list | tuple):
            return " ".join(map(str, value))
        return "none" if value is None else value

    return {key: scalar(value) for key, value in config.public_args().items()}


def log_run(
    config: TrainingConfig,
    pyramid: Pyramid,
    num_processes: int,
    local_batch: int,
    denoiser: torch.nn.Module,
    step: int,
) -> None:
    logger.info("***** Running training *****")
    logger.info(f"  Training image = {config.image_path} -> {pyramid.num_scales} scales {pyramid.sizes} (w, h)")
    logger.info(f"  Num processes = {num_processes}")
    logger.info(f"  Total batch size = {config.train_batch_size} ({local_batch} per process)")
    logger.info(f"  Total optimization steps = {config.max_train_steps} (starting at {step})")
    logger.info(f"  Denoiser parameters = {sum(p.numel() for p in denoiser.parameters()):,} (dim {config.dim})")


def train(config: TrainingConfig) -> SinDDMPipeline:
    """Train (or resume) and leave ``config.output_dir`` a ready pipeline of the EMA weights; return that pipeline.

    Raises:
        ValueError, OSError: a bad option, an unreadable or too small image, an occupied or unwritable output folder,
            a checkpoint of another image: before anything is trained.
    """
    config.check()
    # The depthwise conv's weight gradient differs from its bucket view only in the stride of a size-1 dimension.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    image = load_training_image(config.image_path)
    pyramid = build_pyramid(image, max_pixels=config.max_pixels, scale_factor=config.scale_factor)

    accelerator = make_accelerator(config)
    num_processes = accelerator.num_processes
    local_batch = local_batch_size(config, num_processes)
    checkpoint = prepare_output_dir(config, accelerator)

    torch.manual_seed(config.seed)  # same initial weights on every process
    denoiser = SinDDMModel(dim=config.dim)
    scheduler = SinDDMScheduler.from_pyramid(pyramid, num_train_timesteps=config.num_train_timesteps)
    stored_pyramid = SinDDMPyramid.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid, device=accelerator.device)

    if config.channels_last:
        denoiser.to(memory_format=torch.channels_last)
    if config.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if config.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.learning_rate, fused=config.fused_adam or None)
    lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=config.lr_milestones, gamma=config.lr_gamma
    )
    denoiser, optimizer, lr_scheduler = accelerator.prepare(denoiser, optimizer, lr_scheduler)
    ema = EMA(
        accelerator.unwrap_model(denoiser, keep_torch_compile=False),
        config.ema_decay,
        config.ema_start,
        config.ema_update_every,
    )
    # The scale of a step is the same on every process; timesteps, noise and crops differ per process.
    scale_rng = GeneratorState(config.seed)
    noise_rng = StepSeededGenerator(
        config.seed, accelerator.process_index, device=accelerator.device if config.device_rng else "cpu"
    )
    # saved as safetensors by write_training_state, not registered with accelerate (which pickles custom objects)
    pyramid_sha256 = pyramid_digest(pyramid.images)

    def write_state(folder: str) -> None:
        write_training_state(folder, ema.model, scale_rng.generator, pyramid_sha256)

    pipeline = SinDDMPipeline(denoiser=ema.model, scheduler=scheduler, pyramid=stored_pyramid)  # EMA, updated in place

    global_step, losses = 0, []
    if checkpoint is not None:
        accelerator.print(f"Resuming from {checkpoint}")
        read_training_state(checkpoint, ema.model, scale_rng.generator, pyramid_sha256)  # refuses another pyramid
        accelerator.load_state(checkpoint)
        global_step = checkpoint_step(checkpoint)
        losses = resumed_loss_log(checkpoint, config.output_dir)

    if accelerator.is_main_process:
        accelerator.init_trackers("train_sinddm", config=tracker_config(config))
        log_run(config, pyramid, num_processes, local_batch, denoiser, global_step)

    from tqdm.auto import tqdm

    progress = tqdm(
        total=config.max_train_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="Steps"
    )
    denoiser.train()
    start_time, start_step = time.time(), global_step
    pending: list[tuple[int, torch.Tensor, float, int]] = []  # (step, loss on the device, lr, scale) not read yet
    out_of_time = False
    while global_step < config.max_train_steps and not out_of_time:
        scale = int(torch.randint(0, pyramid.num_scales, (1,), generator=scale_rng.generator))
        generator = noise_rng.at_step(global_step)
        x, blurry = data.batch(scale, local_batch, config.crop_size, generator=generator)
        with accelerator.autocast():
            loss = training_loss(denoiser, scheduler, x, blurry, scale, generator=generator)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(denoiser, keep_torch_compile=False), global_step)
        lr_scheduler.step()
        global_step += 1

        lr = lr_scheduler.get_last_lr()[0]
        pending.append((global_step, accelerator.reduce(loss.detach(), reduction="mean"), lr, scale))
        saving = global_step % config.checkpointing_steps == 0 or global_step == config.max_train_steps
        if len(pending) >= config.log_every or saving:
            for step, loss_tensor, step_lr, step_scale in pending:
                loss_value = loss_tensor.item()
                losses.append((step, loss_value))
                accelerator.log({"loss": loss_value, "lr": step_lr, "scale": step_scale}, step=step)
            rate = (global_step - start_step) / max(time.time() - start_time, 1e-9)
            progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", steps_s=f"{rate:.2f}")
            progress.update(len(pending))
            pending = []
            if config.max_train_minutes is not None:
                out_of_time = time_is_up(accelerator, start_time, config.max_train_minutes)
                saving = saving or out_of_time

        if saving:
            save_checkpoint(accelerator, config, global_step, losses, pipeline, write_state)
        if config.validation_steps and global_step % config.validation_steps == 0 and accelerator.is_main_process:
            _save_validation_grid(pipeline, config, global_step)
    progress.close()
    elapsed = time.time() - start_time
    logger.info(
        f"Trained steps {start_step}..{global_step} in {elapsed:.1f} s"
        + (f" (stopped by --max_train_minutes {config.max_train_minutes:g})" if out_of_time else "")
    )

    digest = weights_digest(accelerator.unwrap_model(denoiser, keep_torch_compile=False))
    logger.info(f"Process {accelerator.process_index}: final denoiser weights sha256 {digest}")
    if accelerator.is_main_process:
        _save_final_outputs(pipeline, losses, config)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return pipeline


def _save_final_outputs(pipeline: SinDDMPipeline, losses: list[tuple[int, float]], config: TrainingConfig) -> None:
    save_pipeline_atomically(pipeline, config.output_dir)
    write_loss_log(config.output_dir, losses)
    _save_loss_curve(config.output_dir, losses)
    with open(os.path.join(config.output_dir, "training_args.json"), "w") as f:
        json.dump(config.public_args(), f, indent=2)
    logger.info(f"Saved the pipeline (EMA weights) to {config.output_dir}")
    if config.push_to_hub:
        from .hub import push_training_output

        push_training_output(config)


def _save_loss_curve(output_dir: str, losses: list[tuple[int, float]]) -> None:
    from .plots import loss_curve_image

    if losses:
        loss_curve_image(losses).save(os.path.join(output_dir, "loss_curve.png"))


def _save_validation_grid(pipeline: SinDDMPipeline, config: TrainingConfig, step: int) -> None:
    from .plots import image_grid

    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(config.seed)).images
    folder = os.path.join(config.output_dir, "validation")
    os.makedirs(folder, exist_ok=True)
    image_grid(images, columns=4).save(os.path.join(folder, f"samples-{step:07d}.png"))
