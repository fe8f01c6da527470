"""Train a SinDDM model on one image.

    accelerate launch train_sinddm.py --image_path my.jpg --output_dir models/my-sinddm
    python train_sinddm.py --image_path my.jpg --output_dir out --max_train_steps 2000 --dim 64   # quick, CPU

The output folder ends as a ready pipeline (the EMA weights): `SinDDMPipeline.from_pretrained(output_dir)`.
Checkpoints go to `output_dir/checkpoint-<step>/` (accelerate state + EMA + RNG); `--resume_from_checkpoint latest`
continues a killed run where its last checkpoint left it. Several processes (GPUs, or CPU processes with gloo)
split the global batch (data parallel):

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        train_sinddm.py ...
    torchrun --nproc_per_node 2 train_sinddm.py ...

On a machine without GPUs, `--multi_gpu` is still the flag that starts several (CPU) processes:
`accelerate launch --cpu --num_processes 2` starts one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
import warnings

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
from sinddm_pipeline.image_io import load_training_image
from sinddm_pipeline.pyramid import DEFAULT_MAX_PIXELS, DEFAULT_SCALE_FACTOR, Pyramid, build_pyramid
from sinddm_pipeline.training import EMA, TrainingData, training_loss
from sinddm_pipeline.training_state import (
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

logger = logging.getLogger("train_sinddm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a SinDDM model on a single image.")
    parser.add_argument("--image_path", required=True, help="The training image (any format PIL reads).")
    parser.add_argument("--output_dir", required=True, help="Where the pipeline and checkpoints are written.")
    parser.add_argument("--overwrite", action="store_true", help="Allow an output_dir that already holds a model.")
    parser.add_argument("--max_train_steps", type=int, default=120_000)
    parser.add_argument(
        "--max_train_minutes",
        type=float,
        default=None,
        help="Also stop (saving a checkpoint and the final pipeline) once this many minutes of training have passed "
        "in this run, counted from its first step; checked every --log_every steps.",
    )
    parser.add_argument("--train_batch_size", type=int, default=32, help="Global batch (split over processes).")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument(
        "--lr_milestones", type=int, nargs="*", default=[20_000, 40_000, 70_000, 80_000, 90_000, 110_000]
    )
    parser.add_argument("--lr_gamma", type=float, default=0.5, help="LR factor at each milestone.")
    parser.add_argument("--dim", type=int, default=160, help="Widest channel count of the denoiser.")
    parser.add_argument("--num_train_timesteps", type=int, default=100)
    parser.add_argument("--scale_factor", type=float, default=DEFAULT_SCALE_FACTOR)
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument(
        "--crop_size",
        type=int,
        default=None,
        help="Train scales larger than this on random square crops of this size (faster; default: whole images, "
        "the reference recipe).",
    )
    parser.add_argument("--ema_decay", type=float, default=0.995)
    parser.add_argument("--ema_start", type=int, default=2000)
    parser.add_argument("--ema_update_every", type=int, default=10)
    parser.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default="no")
    speed = parser.add_argument_group("speed-ups (off by default: the reference recipe is exact fp32)")
    speed.add_argument("--channels_last", action="store_true", help="channels_last denoiser (faster convolutions).")
    speed.add_argument("--cudnn_benchmark", action="store_true", help="torch.backends.cudnn.benchmark (CUDA).")
    speed.add_argument("--allow_tf32", action="store_true", help="TF32 matmuls on Ampere+ GPUs (CUDA).")
    speed.add_argument("--fused_adam", action="store_true", help="torch.optim.Adam(fused=True).")
    speed.add_argument(
        "--compile", action="store_true", help="torch.compile the denoiser (inductor; compiles once per scale size)."
    )
    speed.add_argument(
        "--device_rng",
        action="store_true",
        help="Draw the noise and timesteps on the training device (a per-step-seeded GPU generator) instead of on the "
        "CPU and copying them over: faster on a GPU, reproducible and resumable, but a different random stream than "
        "the default; the same as the default on a CPU.",
    )
    speed.add_argument(
        "--log_every",
        type=int,
        default=1,
        help="Read the loss back from the device every N steps (>1 avoids a GPU synchronisation per step; every "
        "step's loss is still logged).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpointing_steps", type=int, default=5000)
    parser.add_argument("--checkpoints_total_limit", type=int, default=None)
    parser.add_argument("--resume_from_checkpoint", default=None, help='A checkpoint folder, or "latest".')
    parser.add_argument("--validation_steps", type=int, default=0, help="Save a sample grid every N steps (0: off).")
    parser.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", default=None)
    parser.add_argument("--hub_private_repo", action="store_true")
    parser.add_argument("--hub_token", default=None)
    parser.add_argument("--report_to", default=None, help="accelerate trackers, e.g. tensorboard (default: none).")
    args = parser.parse_args(argv)

    positive = (
        "max_train_steps",
        "train_batch_size",
        "dim",
        "num_train_timesteps",
        "max_pixels",
        "ema_update_every",
        "log_every",
    )
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.dim % 2:
        parser.error(f"--dim must be even, got {args.dim}.")
    if not args.learning_rate > 0 or not math.isfinite(args.learning_rate):
        parser.error(f"--learning_rate must be a finite number > 0, got {args.learning_rate}.")
    if not 0 <= args.ema_decay <= 1:
        parser.error(f"--ema_decay must be in [0, 1], got {args.ema_decay}.")
    if args.scale_factor <= 1:
        parser.error(f"--scale_factor must be > 1, got {args.scale_factor}.")
    if args.crop_size is not None and args.crop_size < 16:
        parser.error(f"--crop_size must be >= 16 px (the denoiser sees ~35 px), got {args.crop_size}.")
    minutes = args.max_train_minutes
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        parser.error(f"--max_train_minutes must be a finite number > 0, got {args.max_train_minutes}.")
    if args.checkpointing_steps < 1:
        parser.error(f"--checkpointing_steps must be >= 1, got {args.checkpointing_steps}.")
    return args


def make_accelerator(args: argparse.Namespace) -> Accelerator:
    """The Accelerator of this process.

    Under a multi-process launcher (accelerate launch --multi_gpu, torchrun) on a machine without CUDA, Accelerator()
    silently runs independent single-process copies unless told to use the CPU; cpu=True makes it join the gloo
    process group (checked by tests/test_train_script.py).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = not torch.cuda.is_available()
    return Accelerator(
        mixed_precision=args.mixed_precision,
        dynamo_backend="inductor" if args.compile else "no",
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir),
        cpu=cpu and world_size > 1,
    )


def save_pipeline(pipeline: SinDDMPipeline, output_dir: str) -> None:
    """Save the pipeline as safetensors (no pickle), each file replaced atomically (a kill never leaves a
    half-written one)."""
    save_pipeline_atomically(pipeline, output_dir)


def prepare_output_dir(args: argparse.Namespace, accelerator: Accelerator) -> str | None:
    """Check (on every process) and create the output folder; return the checkpoint to resume from, if any.

    A folder that holds a model is refused unless resuming from one of its checkpoints or ``--overwrite`` (which
    first removes the old run's checkpoints and loss log, so they are never resumed or pruned by mistake).
    """
    checkpoint = None
    if args.resume_from_checkpoint:
        checkpoint = find_checkpoint(args.output_dir, args.resume_from_checkpoint)
        if checkpoint is None:
            accelerator.print(f"No checkpoint found for {args.resume_from_checkpoint!r}; starting a new run.")
    check_output_dir(args.output_dir, overwrite=args.overwrite, resuming=checkpoint is not None)
    accelerator.wait_for_everyone()  # every process checked before the main one writes anything
    if accelerator.is_main_process:
        if args.overwrite and checkpoint is None:
            clear_previous_run(args.output_dir)
        os.makedirs(args.output_dir, exist_ok=True)
    accelerator.wait_for_everyone()
    check_writable(args.output_dir)  # before step 1: a run that cannot save is refused, not trained
    return checkpoint


def save_checkpoint(
    accelerator: Accelerator,
    args: argparse.Namespace,
    step: int,
    losses: list[tuple[int, float]],
    pipeline: SinDDMPipeline,
    write_state=None,
) -> None:
    """Write `checkpoint-<step>` (every process; ``write_state(folder)`` adds this project's training state), then
    keep the folder a ready pipeline of this step with its loss log and prune old checkpoints (main process)."""
    save_checkpoint_atomically(accelerator, args.output_dir, step, losses, write_state)
    if accelerator.is_main_process:
        write_loss_log(args.output_dir, losses)
        save_pipeline(pipeline, args.output_dir)
        if args.checkpoints_total_limit:
            prune_checkpoints(args.output_dir, args.checkpoints_total_limit)


def local_batch_size(args: argparse.Namespace, num_processes: int) -> int:
    """The batch of one process: ``--train_batch_size`` is the global batch, split evenly over the processes."""
    if args.train_batch_size % num_processes:
        raise ValueError(
            f"--train_batch_size ({args.train_batch_size}) must be divisible by the number of processes "
            f"({num_processes}): it is the global batch."
        )
    return args.train_batch_size // num_processes


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


def tracker_config(args: argparse.Namespace) -> dict:
    """The arguments as tracker hyper-parameters (scalars and strings only; no token)."""

    def scalar(value):
        if isinstance(value, list | tuple):
            return " ".join(map(str, value))
        return "none" if value is None else value

    return {key: scalar(value) for key, value in vars(args).items() if key != "hub_token"}


def log_run(
    args: argparse.Namespace,
    pyramid: Pyramid,
    num_processes: int,
    local_batch: int,
    denoiser: torch.nn.Module,
    step: int,
) -> None:
    logger.info("***** Running training *****")
    logger.info(f"  Training image = {args.image_path} -> {pyramid.num_scales} scales {pyramid.sizes} (w, h)")
    logger.info(f"  Num processes = {num_processes}")
    logger.info(f"  Total batch size = {args.train_batch_size} ({local_batch} per process)")
    logger.info(f"  Total optimization steps = {args.max_train_steps} (starting at {step})")
    logger.info(f"  Denoiser parameters = {sum(p.numel() for p in denoiser.parameters()):,} (dim {args.dim})")


def main(args: argparse.Namespace) -> SinDDMPipeline:
    """Train (or resume) and leave ``args.output_dir`` a ready pipeline of the EMA weights; return that pipeline."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    # The depthwise conv's weight gradient differs from its bucket view only in the stride of a size-1 dimension.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    image = load_training_image(args.image_path)
    pyramid = build_pyramid(image, max_pixels=args.max_pixels, scale_factor=args.scale_factor)

    accelerator = make_accelerator(args)
    num_processes = accelerator.num_processes
    local_batch = local_batch_size(args, num_processes)
    checkpoint = prepare_output_dir(args, accelerator)

    torch.manual_seed(args.seed)  # same initial weights on every process
    denoiser = SinDDMModel(dim=args.dim)
    scheduler = SinDDMScheduler.from_pyramid(pyramid, num_train_timesteps=args.num_train_timesteps)
    stored_pyramid = SinDDMPyramid.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid, device=accelerator.device)

    if args.channels_last:
        denoiser.to(memory_format=torch.channels_last)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=args.learning_rate, fused=args.fused_adam or None)
    lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.lr_milestones, gamma=args.lr_gamma)
    denoiser, optimizer, lr_scheduler = accelerator.prepare(denoiser, optimizer, lr_scheduler)
    ema = EMA(
        accelerator.unwrap_model(denoiser, keep_torch_compile=False),
        args.ema_decay,
        args.ema_start,
        args.ema_update_every,
    )
    # The scale of a step is the same on every process; timesteps, noise and crops differ per process.
    scale_rng = GeneratorState(args.seed)
    noise_rng = StepSeededGenerator(
        args.seed, accelerator.process_index, device=accelerator.device if args.device_rng else "cpu"
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
        losses = resumed_loss_log(checkpoint, args.output_dir)

    if accelerator.is_main_process:
        accelerator.init_trackers("train_sinddm", config=tracker_config(args))
        log_run(args, pyramid, num_processes, local_batch, denoiser, global_step)

    from tqdm.auto import tqdm

    progress = tqdm(
        total=args.max_train_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc="Steps"
    )
    denoiser.train()
    start_time, start_step = time.time(), global_step
    pending: list[tuple[int, torch.Tensor, float, int]] = []  # (step, loss on the device, lr, scale) not read yet
    out_of_time = False
    while global_step < args.max_train_steps and not out_of_time:
        scale = int(torch.randint(0, pyramid.num_scales, (1,), generator=scale_rng.generator))
        generator = noise_rng.at_step(global_step)
        x, blurry = data.batch(scale, local_batch, args.crop_size, generator=generator)
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
        saving = global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps
        if len(pending) >= args.log_every or saving:
            for step, loss_tensor, step_lr, step_scale in pending:
                loss_value = loss_tensor.item()
                losses.append((step, loss_value))
                accelerator.log({"loss": loss_value, "lr": step_lr, "scale": step_scale}, step=step)
            rate = (global_step - start_step) / max(time.time() - start_time, 1e-9)
            progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", steps_s=f"{rate:.2f}")
            progress.update(len(pending))
            pending = []
            if args.max_train_minutes is not None:
                out_of_time = time_is_up(accelerator, start_time, args.max_train_minutes)
                saving = saving or out_of_time

        if saving:
            save_checkpoint(accelerator, args, global_step, losses, pipeline, write_state)
        if args.validation_steps and global_step % args.validation_steps == 0 and accelerator.is_main_process:
            _save_validation_grid(pipeline, args, global_step)
    progress.close()
    elapsed = time.time() - start_time
    logger.info(
        f"Trained steps {start_step}..{global_step} in {elapsed:.1f} s"
        + (f" (stopped by --max_train_minutes {args.max_train_minutes:g})" if out_of_time else "")
    )

    digest = weights_digest(accelerator.unwrap_model(denoiser, keep_torch_compile=False))
    logger.info(f"Process {accelerator.process_index}: final denoiser weights sha256 {digest}")
    if accelerator.is_main_process:
        _save_final_outputs(pipeline, losses, args)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return pipeline


def _save_final_outputs(pipeline: SinDDMPipeline, losses: list[tuple[int, float]], args: argparse.Namespace) -> None:
    save_pipeline(pipeline, args.output_dir)
    write_loss_log(args.output_dir, losses)
    _save_loss_curve(args.output_dir, losses)
    with open(os.path.join(args.output_dir, "training_args.json"), "w") as f:
        json.dump({k: v for k, v in vars(args).items() if k != "hub_token"}, f, indent=2)
    logger.info(f"Saved the pipeline (EMA weights) to {args.output_dir}")
    if args.push_to_hub:
        from sinddm_pipeline.hub import push_training_output

        push_training_output(args)


def _save_loss_curve(output_dir: str, losses: list[tuple[int, float]]) -> None:
    from sinddm_pipeline.plots import loss_curve_image

    if losses:
        loss_curve_image(losses).save(os.path.join(output_dir, "loss_curve.png"))


def _save_validation_grid(pipeline: SinDDMPipeline, args: argparse.Namespace, step: int) -> None:
    from sinddm_pipeline.plots import image_grid

    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(args.seed)).images
    folder = os.path.join(args.output_dir, "validation")
    os.makedirs(folder, exist_ok=True)
    image_grid(images, columns=4).save(os.path.join(folder, f"samples-{step:07d}.png"))


def cli(argv: list[str] | None = None) -> int:
    """Run as a script: a bad input (missing or unreadable image, image too small, occupied output folder, ...)
    prints one ``error: ...`` line and returns 2 instead of a traceback."""
    args = parse_args(argv)
    try:
        main(args)
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
