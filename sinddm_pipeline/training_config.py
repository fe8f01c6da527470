"""The options of one training run (`TrainingConfig`): `train_sinddm.py`'s command line, field by field.

Each field is one ``--name`` option of the script, with its default and help text here only (the script builds its
parser from these fields). Values are checked when the config is made: a ValueError names the field and says what
is allowed.

Example:
    >>> from sinddm_pipeline.training_config import TrainingConfig
    >>> config = TrainingConfig(image_path="balloons.png", output_dir="out", max_train_steps=2000, dim=64)
    >>> config.train_batch_size, config.mixed_precision, "hub_token" in config.public_args()
    (32, 'no', False)
    >>> TrainingConfig(image_path="balloons.png", output_dir="out", dim=15)
    Traceback (most recent call last):
        ...
    ValueError: dim must be even, got 15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .pyramid import DEFAULT_MAX_PIXELS, DEFAULT_SCALE_FACTOR

REFERENCE_LR_MILESTONES = (20_000, 40_000, 70_000, 80_000, 90_000, 110_000)
MIXED_PRECISION = ("no", "fp16", "bf16")
SPEED = "speed"
"""The metadata group of the speed-ups (all off by default: the reference recipe is exact fp32)."""


def option(default, help: str, *, group: str | None = None, secret: bool = False, **argparse_kwargs):
    """A config field: its default, its ``--help`` text, its argument group, whether it is a secret (never written
    to a file or a tracker), and extra `argparse` keywords (e.g. ``choices``)."""
    metadata = {"help": help, "group": group, "secret": secret, "argparse": argparse_kwargs}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainingConfig:
    """One SinDDM training run: the paper's recipe by default (dim 160, batch 32, 120,000 steps, exact fp32).

    Every field is the `train_sinddm.py` option of the same name (``--max_train_steps`` ...); ``image_path`` and
    ``output_dir`` are required. `sinddm_pipeline.trainer.train` runs it.

    Raises:
        ValueError: a value out of range (names the field and the allowed values).
    """

    image_path: str = field(metadata={"help": "The training image (any format PIL reads).", "required": True})
    output_dir: str = field(metadata={"help": "Where the pipeline and checkpoints are written.", "required": True})
    overwrite: bool = option(False, "Allow an output_dir that already holds a model.")
    max_train_steps: int = option(120_000, "Optimizer steps in all.")
    max_train_minutes: float | None = option(
        None,
        "Also stop (saving a checkpoint and the final pipeline) once this many minutes of training have passed in "
        "this run, counted from its first step; checked every --log_every steps.",
    )
    train_batch_size: int = option(32, "Global batch (split over processes).")
    learning_rate: float = option(1e-3, "Adam's learning rate.")
    lr_milestones: list[int] = option(REFERENCE_LR_MILESTONES, "Steps at which the LR is multiplied by lr_gamma.")
    lr_gamma: float = option(0.5, "LR factor at each milestone.")
    dim: int = option(160, "Widest channel count of the denoiser (even).")
    num_train_timesteps: int = option(100, "Diffusion steps per scale.")
    scale_factor: float = option(DEFAULT_SCALE_FACTOR, "Size ratio of neighbouring pyramid scales (> 1).")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "The training image is resized down to at most this many pixels.")
    crop_size: int | None = option(
        None,
        "Train scales larger than this on random square crops of this size (faster; default: whole images, the "
        "reference recipe).",
    )
    ema_decay: float = option(0.995, "EMA decay of the saved weights, in [0, 1].")
    ema_start: int = option(2000, "Steps before the EMA starts averaging (it copies the weights until then).")
    ema_update_every: int = option(10, "Update the EMA every N steps.")
    mixed_precision: str = option(
        "no",
        "accelerate's autocast while training (the weights are trained and saved in fp32). Not the same as sampling's "
        "--dtype (generate, evaluate, app.py), which casts the denoiser's weights.",
        choices=MIXED_PRECISION,
    )
    channels_last: bool = option(False, "channels_last denoiser (faster convolutions).", group=SPEED)
    cudnn_benchmark: bool = option(False, "torch.backends.cudnn.benchmark (CUDA).", group=SPEED)
    allow_tf32: bool = option(False, "TF32 matmuls and convolutions on Ampere+ GPUs (CUDA).", group=SPEED)
    fused_adam: bool = option(False, "torch.optim.Adam(fused=True).", group=SPEED)
    compile: bool = option(False, "torch.compile the denoiser (inductor; compiles once per scale size).", group=SPEED)
    device_rng: bool = option(
        False,
        "Draw the noise and timesteps on the training device (a per-step-seeded GPU generator) instead of on the CPU "
        "and copying them over: faster on a GPU, reproducible and resumable, but a different random stream than the "
        "default; the same as the default on a CPU.",
        group=SPEED,
    )
    log_every: int = option(
        1,
        "Read the loss back from the device every N steps (>1 avoids a GPU synchronisation per step; every step's "
        "loss is still logged).",
        group=SPEED,
    )
    seed: int = option(0, "Seed of the initial weights, the scales drawn, the noise and the sample grids.")
    checkpointing_steps: int = option(5000, "Save a resumable checkpoint every N steps.")
    checkpoints_total_limit: int | None = option(None, "Keep at most this many checkpoints (default: all).")
    resume_from_checkpoint: str | None = option(None, 'A checkpoint folder, or "latest".')
    validation_steps: int = option(0, "Save a sample grid every N steps (0: off).")
    num_threads: int | None = option(None, "torch CPU threads (default: torch's).")
    push_to_hub: bool = option(False, "Push the pipeline with a model card to the Hub at the end.")
    hub_model_id: str | None = option(None, "The Hub repo (user/name; default: the output folder's name).")
    hub_private_repo: bool = option(False, "Create the Hub repo private.")
    hub_token: str | None = option(None, "A Hub token with write access (default: the logged-in one).", secret=True)
    report_to: str | None = option(None, "accelerate trackers, e.g. tensorboard (default: none).")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise a ValueError naming the first field out of range."""
        positive = ("max_train_steps", "train_batch_size", "dim", "num_train_timesteps", "max_pixels")
        for name in (*positive, "ema_update_every", "log_every", "checkpointing_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.dim % 2:
            raise ValueError(f"dim must be even, got {self.dim}.")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate}.")
        if not 0 <= self.ema_decay <= 1:
            raise ValueError(f"ema_decay must be in [0, 1], got {self.ema_decay}.")
        if self.scale_factor <= 1:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}.")
        if self.crop_size is not None and self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16 px (the denoiser sees ~35 px), got {self.crop_size}.")
        minutes = self.max_train_minutes
        if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
            raise ValueError(f"max_train_minutes must be a finite number > 0, got {minutes}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}.")

    def public_args(self) -> dict:
        """The options without the secret ones (``hub_token``): what a model card, ``training_args.json`` or a
        tracker may show."""
        return {item.name: getattr(self, item.name) for item in fields(self) if not item.metadata.get("secret")}
