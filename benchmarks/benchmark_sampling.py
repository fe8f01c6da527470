"""Sampling latency and throughput of SinDDMPipeline (the exact path), batch 1 and 16.

    python benchmarks/benchmark_sampling.py            # dim 160 (the paper's model), balloons sizes
    python benchmarks/benchmark_sampling.py --quick    # tiny model, one repeat (what CI runs)
    python benchmarks/benchmark_sampling.py --dtype bf16 --channels_last --cuda_graphs
    python benchmarks/benchmark_sampling.py --matrix --num_inference_steps 20   # exact, then the fast paths
    python benchmarks/benchmark_sampling.py --matrix exact bf16 compile --compile_mode reduce-overhead

Weights are random: the cost of sampling does not depend on them.

`--matrix` runs the exact fp32 path and then the fast paths in one process, each on a fresh pipeline with the same
weights, and prints one table: seconds per call at every batch size, images/s, speed-up over the exact row, and a
numerics check: the max |difference| of a batch-1 sample (same seeded generator) from the exact path's. Rows:

    exact          fp32 denoiser
    channels_last  fp32, channels_last denoiser
    bf16           bf16 denoiser (samples and scheduler math stay fp32), channels_last
    fp16           fp16 denoiser, channels_last
    cuda_graphs    bf16, channels_last, the denoiser replayed through CUDA graphs (CUDA only)
    strided        the cuda_graphs row with --num_inference_steps steps per scale (only with that option)
    strided_2m     the strided row with the scheduler's second-order solver (solver_order=2), which keeps the
                   fine scales' quality at large strides (only with --num_inference_steps)
    compile        bf16, channels_last, torch.compile(denoiser, mode=--compile_mode) (opt-in: it takes a while)
    fast           pipe.enable_fast_sampling(): what a probe measures fastest here, its strided fast steps
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

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

from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
from sinddm_pipeline.pyramid import Pyramid

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Variant:
    """The fast paths of one run; the defaults are the exact path."""

    name: str = "exact"
    dtype: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    compile: bool = False
    steps: int | None = None  # num_inference_steps; None: every step (exact)
    solver_order: int = 1
    auto: bool = False  # pipe.enable_fast_sampling(): a probe picks dtype and memory format; its fast steps

    def describe(self, compile_mode: str = "default") -> str:
        if self.auto:
            return "enable_fast_sampling() (the probe's choice, in the notes)"
        parts = [self.dtype]
        parts += ["channels_last"] * self.channels_last + ["CUDA graphs"] * self.cuda_graphs
        parts += [f"compile ({compile_mode})"] * self.compile
        parts += [f"{self.steps} steps/scale"] if self.steps else []
        parts += ["2nd-order solver"] if self.solver_order == 2 else []
        return ", ".join(parts)


def matrix_variants(steps: int | None) -> dict[str, Variant]:
    """Every matrix row by name (see the module docstring); 'strided' only when a step count is given."""
    fast = dict(dtype="bf16", channels_last=True)
    rows = {
        "exact": Variant(),
        "channels_last": Variant("channels_last", channels_last=True),
        "bf16": Variant("bf16", **fast),
        "fp16": Variant("fp16", dtype="fp16", channels_last=True),
        "cuda_graphs": Variant("cuda_graphs", cuda_graphs=True, **fast),
        "strided": Variant("strided", cuda_graphs=True, steps=steps, **fast),
        "strided_2m": Variant("strided_2m", cuda_graphs=True, steps=steps, solver_order=2, **fast),
        "compile": Variant("compile", compile=True, **fast),
        "fast": Variant("fast", auto=True),
    }
    if steps is None:
        del rows["strided"], rows["strided_2m"]
    return rows


MATRIX_CHOICES = tuple(matrix_variants(2))
DEFAULT_MATRIX = tuple(name for name in MATRIX_CHOICES if name != "compile")


def build_pipeline(
    state: dict, dim: int, pyramid: Pyramid, device: torch.device, variant: Variant, compile_mode: str
) -> SinDDMPipeline:
    """A fresh pipeline with the weights ``state``, on ``device``, with the fast paths of ``variant``."""
    denoiser = SinDDMModel(dim=dim)
    denoiser.load_state_dict(state)
    scheduler = SinDDMScheduler.from_pyramid(pyramid, solver_order=variant.solver_order)
    pipe = SinDDMPipeline(denoiser, scheduler, SinDDMPyramid.from_pyramid(pyramid))
    pipe = pipe.to(device=device, dtype=DTYPES[variant.dtype], silence_dtype_warnings=True)
    pipe.set_progress_bar_config(disable=True)
    if variant.channels_last:
        pipe.denoiser.to(memory_format=torch.channels_last)
    if variant.cuda_graphs:
        pipe.enable_cuda_graphs()
    if variant.auto:
        pipe.fast_choice = pipe.enable_fast_sampling()
    if variant.compile:
        # diffusers' __setattr__ accepts a compiled module as the same component (it unwraps it for the config)
        pipe.denoiser = compile_denoiser(pipe.denoiser, compile_mode)
    return pipe


def applicable(variant: Variant, device: torch.device) -> tuple[Variant, str | None]:
    """``variant`` without CUDA graphs where this run is not on CUDA, and the reason they were dropped."""
    reason = cuda_only_reason("--cuda_graphs", device) if variant.cuda_graphs else None
    return (replace(variant, cuda_graphs=False), reason) if reason else (variant, None)


def sampler(pipe: SinDDMPipeline, device: torch.device, seed: int, steps: int | None) -> Callable[[int], torch.Tensor]:
    """``sample(batch)``: one pipeline call (output in [0, 1], NCHW) with a generator freshly seeded ``seed``."""

    def sample(batch: int) -> torch.Tensor:
        generator = torch.Generator(device).manual_seed(seed)
        return pipe(batch_size=batch, generator=generator, output_type="pt", num_inference_steps=steps).images

    return sample


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dim 8, batch 1 and 2, one repeat")
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=None, help="default: 1 16 (--quick: 1 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per batch size first")
    parser.add_argument("--seed", type=int, default=0, help="weights and sampling generator")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    fast = parser.add_argument_group("fast paths (off: the exact fp32 path)")
    fast.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="the denoiser's dtype (pipe.to(dtype))")
    fast.add_argument("--channels_last", action="store_true", help="the denoiser in channels_last")
    fast.add_argument("--cuda_graphs", action="store_true", help="pipe.enable_cuda_graphs() (CUDA only)")
    fast.add_argument("--compile", action="store_true", help="pipe.denoiser = torch.compile(pipe.denoiser)")
    fast.add_argument("--compile_mode", default="default", help="torch.compile mode (default, reduce-overhead, ...)")
    fast.add_argument("--num_inference_steps", type=int, default=None, help="strided sampling: steps per scale")
    parser.add_argument(
        "--matrix",
        nargs="*",
        choices=MATRIX_CHOICES,
        default=None,
        metavar="VARIANT",
        help=f"the exact path, then variants in one process (default: {' '.join(DEFAULT_MATRIX)}, 'strided' only "
        f"with --num_inference_steps; choices: {' '.join(MATRIX_CHOICES)}; 'exact' always runs first)",
    )
    args = parser.parse_args(argv)
    args.variant = Variant(
        "single", args.dtype, args.channels_last, args.cuda_graphs, args.compile, args.num_inference_steps
    )
    if args.matrix is not None and (args.dtype != "fp32" or args.channels_last or args.cuda_graphs or args.compile):
        parser.error("--matrix sets the fast paths of each row itself: give no --dtype, --compile, ... with it")
    if args.cuda_graphs and args.compile:
        parser.error(
            "--cuda_graphs replays the eager denoiser: for graphs with --compile, use --compile_mode reduce-overhead"
        )
    strided = {"strided", "strided_2m"} & set(args.matrix or ())
    if strided and args.num_inference_steps is None:
        parser.error(f"the {' and '.join(sorted(strided))} rows need --num_inference_steps")
    if args.quick:
        args.dim, args.repeats = 8, 1
    if args.batch_sizes is None:
        args.batch_sizes = [1, 2] if args.quick else [1, 16]
        if args.matrix is not None:
            args.warmup = 0  # the batch-1 numerics call warms up
    return args


def random_weights(dim: int, seed: int) -> dict:
    torch.manual_seed(seed)
    return SinDDMModel(dim=dim).state_dict()


def run_single(args: argparse.Namespace, device: torch.device, pyramid: Pyramid, image_name: str) -> list[list[str]]:
    """One set of fast paths (none by default): best and median seconds at every batch size."""
    variant, skipped = applicable(args.variant, device)
    with backend_flags():
        pipe = build_pipeline(
            random_weights(args.dim, args.seed), args.dim, pyramid, device, variant, args.compile_mode
        )
        steps = pipe.num_steps(pipe.plan(), variant.steps)
        rows = []
        for batch in args.batch_sizes:
            generator = torch.Generator(device).manual_seed(args.seed)
            call = functools.partial(
                pipe, batch_size=batch, generator=generator, output_type="pt", num_inference_steps=variant.steps
            )
            times = time_call(call, device, args.repeats, args.warmup)
            best, median = min(times), float(np.median(times))
            rows.append([str(batch), f"{best:.3f}", f"{median:.3f}", f"{batch / best:.2f}", peak_memory_mb(device)])
    exact = variant == Variant("single")
    print_table(
        "SinDDM sampling, exact path (fp32)" if exact else f"SinDDM sampling ({variant.describe(args.compile_mode)})",
        ["batch", "best s", "median s", "images/s", "peak MB"],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}",
            f"model: dim {args.dim}, {sum(p.numel() for p in pipe.denoiser.parameters()):,} parameters",
            f"image: {image_name}, {pipe.pyramid.num_scales} scales, {steps} denoising steps per sample",
            f"repeats: {args.repeats} after {'one' if args.warmup == 1 else args.warmup} warm-up",
            *([skipped] if skipped else []),
        ],
    )
    return rows


@dataclass
class VariantResult:
    """One matrix row's measurements: median seconds per batch size, the batch-1 sample, steps, peak memory."""

    seconds: dict[int, float]
    sample: torch.Tensor
    steps: int
    peak: str
    first_call_s: float
    note: str | None = None


def measure_variant(
    args: argparse.Namespace, state: dict, pyramid: Pyramid, device: torch.device, variant: Variant, label: str
) -> VariantResult:
    """A fresh pipeline with ``variant``'s fast paths: a batch-1 sample for the numerics check, then the timings."""
    reset_peak_memory(device)
    pipe = build_pipeline(state, args.dim, pyramid, device, variant, args.compile_mode)
    sample = sampler(pipe, device, args.seed, variant.steps)
    start = time.perf_counter()
    batch1 = sample(1).float().cpu()
    first_call_s = time.perf_counter() - start
    progress(f"[sampling matrix] {label}: first batch-1 call {first_call_s:.1f} s")
    seconds = {
        batch: float(np.median(time_call(functools.partial(sample, batch), device, args.repeats, args.warmup)))
        for batch in args.batch_sizes
    }
    steps = pipe.num_steps(pipe.plan(), pipe.default_num_inference_steps(variant.steps))
    result = VariantResult(seconds, batch1, steps, variant_peak_memory_mb(device), first_call_s)
    if variant.auto:
        result.note = pipe.fast_choice.summary()
    del pipe, sample
    gc.collect()
    return result


def matrix_row(label: str, result: VariantResult, exact: VariantResult, batch_sizes: list[int]) -> list[str]:
    largest = max(batch_sizes)
    if result is exact:
        difference = "reference"
    elif result.steps != exact.steps:
        difference = "n/a (fewer steps)"
    else:
        difference = f"{(result.sample - exact.sample).abs().max().item():.1e}"
    return [
        label,
        str(result.steps),
        *[f"{result.seconds[b]:.3f}" for b in batch_sizes],
        f"{largest / result.seconds[largest]:.2f}",
        *[f"{exact.seconds[b] / result.seconds[b]:.2f}x" for b in batch_sizes],
        result.peak,
        difference,
    ]


def run_matrix(args: argparse.Namespace, device: torch.device, pyramid: Pyramid, image_name: str) -> list[list[str]]:
    """The exact path, then each requested variant, in one process: one table."""
    variants = matrix_variants(args.num_inference_steps)
    requested = args.matrix or DEFAULT_MATRIX
    names = ["exact", *[n for n in variants if n in requested and n != "exact"]]
    state = random_weights(args.dim, args.seed)
    rows, notes, exact = [], [], None
    blank = ["-"] * (2 * len(args.batch_sizes) + 3)
    with backend_flags():
        for name in names:
            variant, skipped = applicable(variants[name], device)
            label = "exact (fp32)" if name == "exact" else f"{name}: {variant.describe(args.compile_mode)}"
            if skipped and name == "cuda_graphs":
                rows.append([label, "skipped", *blank])
                notes.append(f"{name}: {skipped}")
                progress(f"[sampling matrix] {name}: {skipped}")
                continue
            if skipped:
                notes.append(f"{name}: ran without CUDA graphs, {skipped}")
            result = measure_variant(args, state, pyramid, device, variant, label)
            if exact is None:
                exact = result
            rows.append(matrix_row(label, result, exact, args.batch_sizes))
            if result.note:
                notes.append(f"{name}: {result.note}")
            if variant.compile or variant.cuda_graphs:
                notes.append(f"{name}: first batch-1 call (compiling/capturing) {result.first_call_s:.1f} s")
            times = ", ".join(f"batch {b}: {s:.3f} s" for b, s in result.seconds.items())
            progress(f"[sampling matrix] {label}: {times}")
    largest = max(args.batch_sizes)
    print_table(
        "SinDDM sampling: exact fp32 path and fast paths, side by side",
        [
            "variant",
            "steps",
            *[f"batch {b} s" for b in args.batch_sizes],
            f"images/s (batch {largest})",
            *[f"speed-up b{b}" for b in args.batch_sizes],
            "peak MB",
            "max abs diff, batch 1",
        ],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}; {utc_now()}",
            f"model: dim {args.dim}, random weights (seed {args.seed}); each row a fresh pipeline, same weights",
            f"image: {image_name}, {pyramid.num_scales} scales; steps: denoising steps per sample",
            f"timing: median of {args.repeats} timed calls per batch size after {args.warmup} untimed (and one "
            "batch-1 call for the numerics check); speed-up: exact / row",
            "exact: fp32 with TF32 off (torch allows TF32 in cuDNN convolutions by default); half-precision rows keep "
            "samples and scheduler math in fp32",
            f"max abs diff, batch 1: largest pixel difference (images in [0, 1]) from the exact path, generator seed "
            f"{args.seed}",
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
