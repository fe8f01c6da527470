"""Training throughput (ms per step) of the exact recipe: balloons sizes, batch 32, L1 loss, Adam.

    python benchmarks/benchmark_training.py            # dim 160, batch 32, every scale
    python benchmarks/benchmark_training.py --quick    # tiny model and batch (what CI runs)
    python benchmarks/benchmark_training.py --mixed_precision bf16 --channels_last --cudnn_benchmark --fused_adam
    python benchmarks/benchmark_training.py --matrix   # exact fp32, then each fast path added, in one process
    python benchmarks/benchmark_training.py --matrix exact fused_adam compile --compile_mode max-autotune

The step time depends on the scale (the finest has ~15x the pixels of the coarsest); the table gives each scale
and the mean over scales, which is the expected time of a step of the recipe (scales are drawn uniformly).

`--matrix` runs the exact fp32 recipe and then cumulative variants (each row adds one fast path to the row before),
each from a fresh model with the same seed, and prints one table: mean ms/step, speed-up over the exact row, peak
memory, and a numerics check: the loss of every variant on one fixed batch (same weights, noise and timesteps) relative
to the exact fp32 loss. CUDA-only options (cudnn.benchmark, TF32) are skipped with the reason elsewhere.
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from common import (
    backend_flags,
    balloons_pyramid,
    compile_denoiser,
    cuda_only_reason,
    machine_description,
    peak_memory_mb,
    print_table,
    progress,
    reset_peak_memory,
    time_call,
    utc_now,
    variant_peak_memory_mb,
)

from sinddm_pipeline import SinDDMModel, SinDDMScheduler
from sinddm_pipeline.cli_flags import add_deprecated_alias
from sinddm_pipeline.pyramid import Pyramid
from sinddm_pipeline.training import TrainingData, training_loss

# The matrix rows, in order: each adds its fast path to every one before it.
# The matrix rows, in order, and the Settings fields each turns on (on top of every row before it).
VARIANT_FLAGS = {
    "exact": (),
    "channels_last": ("channels_last",),
    "bf16": ("bf16",),
    "cudnn_tf32": ("cudnn_benchmark", "allow_tf32"),
    "fused_adam": ("fused_adam",),
    "device_rng": ("device_rng",),
    "compile": ("compile",),
}
VARIANTS = tuple(VARIANT_FLAGS)
DEFAULT_MATRIX = VARIANTS[:-1]  # compile is opt-in: it takes a while
LABELS = {
    "exact": "exact (fp32)",
    "channels_last": "+channels_last",
    "bf16": "+bf16 autocast",
    "cudnn_tf32": "+cudnn.benchmark, TF32",
    "fused_adam": "+fused Adam",
    "device_rng": "+noise and t drawn on the GPU",
    "compile": "+torch.compile",
}
CUDA_ONLY = ("cudnn_benchmark", "allow_tf32", "device_rng")  # Settings fields


@dataclass(frozen=True)
class Settings:
    """The fast paths of one run; all off is the exact fp32 recipe."""

    channels_last: bool = False
    bf16: bool = False  # --mixed_precision bf16: autocast
    cudnn_benchmark: bool = False
    allow_tf32: bool = False
    fused_adam: bool = False
    device_rng: bool = False  # the recipe draws noise and timesteps on the CPU and copies them over
    compile: bool = False

    def describe(self, compile_mode: str = "default") -> str:
        names = {"bf16": "bf16 autocast", "compile": f"compile ({compile_mode})"}
        return ", ".join(names.get(f.name, f.name) for f in fields(self) if getattr(self, f.name)) or "fp32"


def cumulative_settings(variant: str) -> Settings:
    """The settings of a matrix row: its own fast path and those of every row before it."""
    on = [flag for name in VARIANTS[: VARIANTS.index(variant) + 1] for flag in VARIANT_FLAGS[name]]
    return replace(Settings(), **dict.fromkeys(on, True))


def applicable(settings: Settings, device: torch.device) -> tuple[Settings, str | None]:
    """``settings`` without the CUDA-only options where this run is not on CUDA, and why they were dropped."""
    dropped = [name for name in CUDA_ONLY if getattr(settings, name)]
    reason = cuda_only_reason(", ".join(f"--{name}" for name in dropped), device) if dropped else None
    if reason:
        settings = replace(settings, **dict.fromkeys(dropped, False))
    return settings, reason


def memory_format(settings: Settings) -> torch.memory_format:
    return torch.channels_last if settings.channels_last else torch.contiguous_format


@dataclass
class Trainer:
    """A fresh model (seed 0) and its optimizer under one set of fast paths."""

    model: torch.nn.Module
    denoiser: Callable  # the model, or its compiled wrapper
    optimizer: torch.optim.Optimizer
    settings: Settings
    device: torch.device
    device_generator: torch.Generator | None  # with device_rng: draws the noise and timesteps where the model is

    @classmethod
    def build(cls, settings: Settings, dim: int, device: torch.device, compile_mode: str) -> Trainer:
        torch.manual_seed(0)
        model = SinDDMModel(dim=dim).to(device=device, memory_format=memory_format(settings))
        denoiser = compile_denoiser(model, compile_mode) if settings.compile else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if settings.fused_adam else None)
        device_generator = torch.Generator(device).manual_seed(0) if settings.device_rng else None
        return cls(model, denoiser, optimizer, settings, device, device_generator)

    def loss(
        self, scheduler: SinDDMScheduler, x: torch.Tensor, blurry: torch.Tensor | None, scale: int, **kwargs
    ) -> torch.Tensor:
        """The training loss of one batch, in the layout and precision of these settings."""
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            blurry = None if blurry is None else blurry.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.bf16):
            return training_loss(self.denoiser, scheduler, x, blurry, scale, **kwargs)

    def step(
        self,
        data: TrainingData,
        scheduler: SinDDMScheduler,
        scale: int,
        batch_size: int,
        crop_size: int | None,
        generator: torch.Generator,
    ) -> None:
        """One optimizer step on a batch of scale ``scale``."""
        x, blurry = data.batch(scale, batch_size, crop_size, generator=generator)
        draws = {"generator": generator}  # the recipe: drawn on the CPU by training_loss, then copied
        if self.device_generator is not None:
            rng = {"device": self.device, "generator": self.device_generator}
            draws = {
                "timesteps": torch.randint(0, len(scheduler), (x.shape[0],), **rng),
                "noise": torch.randn(x.shape, dtype=x.dtype, **rng),
            }
        self.loss(scheduler, x, blurry, scale, **draws).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


@dataclass
class FixedBatch:
    """One batch of the finest scale with its noise and timesteps drawn once: the numerics check's input."""

    x: torch.Tensor
    blurry: torch.Tensor | None
    noise: torch.Tensor
    timesteps: torch.Tensor
    scale: int

    @classmethod
    def draw(cls, data: TrainingData, scheduler: SinDDMScheduler, batch_size: int, crop_size: int | None) -> FixedBatch:
        generator = torch.Generator().manual_seed(1234)
        scale = data.num_scales - 1
        x, blurry = data.batch(scale, batch_size, crop_size, generator=generator)
        timesteps = torch.randint(0, len(scheduler), (batch_size,), generator=generator).to(x.device)
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        return cls(x, blurry, noise, timesteps, scale)

    def loss(self, trainer: Trainer, scheduler: SinDDMScheduler) -> float:
        # with grad enabled, as in training: a compiled model then builds the graph its training steps reuse
        loss = trainer.loss(scheduler, self.x, self.blurry, self.scale, timesteps=self.timesteps, noise=self.noise)
        return float(loss.detach())


def scale_times(
    step: Callable[[int], None],
    pyramid: Pyramid,
    device: torch.device,
    repeats: int,
    warmup: int,
    reduce: Callable[[list[float]], float],
) -> list[float]:
    """Seconds per step at every scale (``reduce`` of ``repeats`` timed steps after ``warmup`` untimed ones)."""
    return [reduce(time_call(lambda s=s: step(s), device, repeats, warmup)) for s in range(pyramid.num_scales)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dim 8, batch 2, one repeat")
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--crop_size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per scale first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    fast = parser.add_argument_group("fast paths (off: the exact fp32 recipe)")
    fast.add_argument(
        "--mixed_precision",
        choices=("no", "bf16"),
        default="no",
        help="bf16: torch.autocast while training, as train_sinddm.py's --mixed_precision (the weights stay fp32; "
        "not sampling's --dtype, which casts them)",
    )
    add_deprecated_alias(fast, "--bf16", "--mixed_precision bf16", dest="mixed_precision", const="bf16")
    fast.add_argument("--channels_last", action="store_true", help="model and batches in channels_last")
    fast.add_argument("--cudnn_benchmark", action="store_true", help="torch.backends.cudnn.benchmark (CUDA only)")
    fast.add_argument("--allow_tf32", action="store_true", help="TF32 convolutions and matmuls (CUDA only)")
    add_deprecated_alias(fast, "--tf32", "--allow_tf32", dest="allow_tf32", const=True)
    fast.add_argument("--fused_adam", action="store_true", help="torch.optim.Adam(fused=True)")
    fast.add_argument(
        "--device_rng", action="store_true", help="noise and timesteps drawn on the GPU, not copied (CUDA only)"
    )
    fast.add_argument("--compile", action="store_true", help="torch.compile of the model")
    fast.add_argument("--compile_mode", default="default", help="torch.compile mode (default, max-autotune, ...)")
    parser.add_argument(
        "--matrix",
        nargs="*",
        choices=VARIANTS,
        default=None,
        metavar="VARIANT",
        help=f"exact fp32, then cumulative variants in one process (default: {' '.join(DEFAULT_MATRIX)}; "
        f"choices: {' '.join(VARIANTS)}; 'exact' always runs first)",
    )
    args = parser.parse_args(argv)
    args.bf16 = args.mixed_precision == "bf16"
    chosen = Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})
    if args.matrix is not None and chosen != Settings():
        parser.error(
            "--matrix sets the fast paths of each row itself: give no --mixed_precision, --compile, ... with it"
        )
    args.settings = chosen
    if args.quick:
        args.dim, args.batch_size, args.repeats = 8, 2, 1
    return args


def run_single(args: argparse.Namespace, device: torch.device, pyramid: Pyramid, image_name: str) -> list[list[str]]:
    """One set of fast paths (none by default): ms/step at every scale and their mean."""
    settings, skipped = applicable(args.settings, device)
    scheduler = SinDDMScheduler.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid, device=device)
    generator = torch.Generator().manual_seed(0)
    with backend_flags(settings.cudnn_benchmark, settings.allow_tf32):
        trainer = Trainer.build(settings, args.dim, device, args.compile_mode)
        step = functools.partial(
            trainer.step, data, scheduler, batch_size=args.batch_size, crop_size=args.crop_size, generator=generator
        )
        times = scale_times(step, pyramid, device, args.repeats, args.warmup, min)

    rows = [[str(s), "x".join(map(str, pyramid.sizes[s])), f"{t * 1000:.1f}"] for s, t in enumerate(times)]
    rows.append(["mean", "", f"{sum(times) / len(times) * 1000:.1f}"])
    print_table(
        f"SinDDM training step, exact recipe ({settings.describe(args.compile_mode)})",
        ["scale", "size", "ms/step"],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}",
            f"model: dim {args.dim}; batch {args.batch_size}; crops: {args.crop_size or 'none (whole images)'}",
            f"image: {image_name}; best of {args.repeats} after {'one' if args.warmup == 1 else args.warmup} warm-up; "
            f"peak memory MB: {peak_memory_mb(device)}",
            *([skipped] if skipped else []),
        ],
    )
    return rows


@dataclass
class VariantResult:
    """One matrix row's measurements: seconds per step by scale, the fixed-batch loss, peak memory."""

    times: list[float]
    loss: float
    peak: str
    first_call_s: float

    @property
    def mean(self) -> float:
        return sum(self.times) / len(self.times)


def measure_variant(
    args: argparse.Namespace,
    settings: Settings,
    device: torch.device,
    pyramid: Pyramid,
    data: TrainingData,
    scheduler: SinDDMScheduler,
    fixed: FixedBatch,
    label: str,
) -> VariantResult:
    """A fresh model under ``settings``: its loss on the fixed batch, then the timed steps of every scale."""
    reset_peak_memory(device)
    generator = torch.Generator().manual_seed(0)
    with backend_flags(settings.cudnn_benchmark, settings.allow_tf32):
        trainer = Trainer.build(settings, args.dim, device, args.compile_mode)
        start = time.perf_counter()
        loss = fixed.loss(trainer, scheduler)
        first_call_s = time.perf_counter() - start
        progress(f"[training matrix] {label}: first call {first_call_s:.1f} s, loss {loss:.6f}")
        step = functools.partial(
            trainer.step, data, scheduler, batch_size=args.batch_size, crop_size=args.crop_size, generator=generator
        )
        times = scale_times(step, pyramid, device, args.repeats, args.warmup, lambda t: float(np.median(t)))
    result = VariantResult(times, loss, variant_peak_memory_mb(device), first_call_s)
    del trainer, step
    gc.collect()
    return result


def matrix_row(label: str, result: VariantResult, exact: VariantResult) -> list[str]:
    relative = "reference" if result is exact else f"{abs(result.loss - exact.loss) / abs(exact.loss):.1e}"
    return [
        label,
        f"{result.mean * 1000:.1f}",
        " / ".join(f"{t * 1000:.1f}" for t in result.times),
        f"{exact.mean / result.mean:.2f}x",
        result.peak,
        relative,
    ]


def run_matrix(args: argparse.Namespace, device: torch.device, pyramid: Pyramid, image_name: str) -> list[list[str]]:
    """The exact recipe, then each requested variant (cumulative), in one process: one table."""
    names = ["exact", *[n for n in VARIANTS if n in (args.matrix or DEFAULT_MATRIX) and n != "exact"]]
    scheduler = SinDDMScheduler.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid, device=device)
    fixed = FixedBatch.draw(data, scheduler, args.batch_size, args.crop_size)
    rows, notes, exact = [], [], None
    for name in names:
        label = LABELS[name] + (f" ({args.compile_mode})" if name == "compile" else "")
        settings, _ = applicable(cumulative_settings(name), device)
        own = VARIANT_FLAGS[name]
        if own and not any(getattr(settings, flag) for flag in own):  # all of this row's fast paths need CUDA
            reason = cuda_only_reason(", ".join(f"--{flag}" for flag in own), device)
            rows.append([label, "skipped", "-", "-", "-", "-"])
            notes.append(f"{label}: {reason}")
            progress(f"[training matrix] {label}: {reason}")
            continue
        result = measure_variant(args, settings, device, pyramid, data, scheduler, fixed, label)
        if exact is None:
            exact = result
        rows.append(matrix_row(label, result, exact))
        if settings.compile:
            notes.append(f"{label}: first call (compiling the finest scale) {result.first_call_s:.1f} s")
        progress(f"[training matrix] {label}: {result.mean * 1000:.1f} ms/step")
    sizes = " / ".join("x".join(map(str, size)) for size in pyramid.sizes)
    print_table(
        "SinDDM training step: exact fp32 recipe and fast paths, side by side",
        ["variant", "mean ms/step", "ms/step by scale", "speed-up", "peak MB", "loss rel. diff"],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}; {utc_now()}",
            f"model: dim {args.dim}; batch {args.batch_size}; crops: {args.crop_size or 'none (whole images)'}; "
            "each row a fresh model, seed 0",
            f"image: {image_name}; scales {sizes}; mean over scales = expected step (scales drawn uniformly)",
            f"timing: median of {args.repeats} timed steps per scale after {args.warmup} untimed; "
            "speed-up: exact / row",
            "rows are cumulative (each adds one fast path); exact: fp32 with TF32 off (torch allows TF32 in cuDNN "
            "convolutions by default)",
            "loss rel. diff: |loss - exact loss| / exact loss on one fixed finest-scale batch (same weights, noise, t)",
            *notes,
        ],
    )
    return rows


def main(argv: list[str] | None = None) -> list[list[str]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pyramid, image_name = balloons_pyramid()
    if args.matrix is not None:
        return run_matrix(args, device, pyramid, image_name)
    return run_single(args, device, pyramid, image_name)


if __name__ == "__main__":
    main()
