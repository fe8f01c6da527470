"""The training-free pipeline (`SinDDMPipeline.from_image`) against a trained model's exact sampling, in one run.

    python benchmarks/benchmark_training_free.py                  # balloons, dim-160 trained model for the ratio
    python benchmarks/benchmark_training_free.py --accuracy       # + the fast path against the exact sums, per call
    python benchmarks/benchmark_training_free.py --megapixel      # + a 1024x1024 sample (time and peak memory)
    python benchmarks/benchmark_training_free.py --quick          # tiny sizes, one repeat (what CI runs)
    python benchmarks/benchmark_training_free.py --extra_images a.png b.png   # + time to first sample of each

Rows of the timing table (batch 1 unless said):

    trained, exact            a SinDDMModel of --dim (random weights: the cost does not depend on them), every step
    from_image + 1st sample   building the training-free pipeline and its first sample (its candidate indexes are
                              built on that first call): what a user with a new image waits for
    next sample               one more sample of the same pipeline
    batch 8, per sample       eight samples in one call, divided by eight
    1024x1024 sample          (--megapixel) one sample of 1024x1024 (extra scales beyond the finest)

``--accuracy`` runs one sample with the default (fast) denoiser and, at every scale > 0, compares its clean-image
estimate with the exact sums' (``search="exact"``, no window cutoff, query stride 1) at the stage's first and last
step, on the very inputs of that sample: mean and max |difference| in [-1, 1] units.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import REPO_ROOT, balloons_pyramid, machine_description, peak_memory_mb, print_table, progress, utc_now
from PIL import Image

from sinddm_pipeline import SinDDMModel, SinDDMPatchDenoiser, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
from sinddm_pipeline.pyramid import build_pyramid


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=160, help="Width of the trained model of the ratio.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--accuracy", action="store_true", help="Compare the fast path with the exact sums.")
    parser.add_argument("--megapixel", action="store_true", help="Also time a 1024x1024 sample.")
    parser.add_argument("--quick", action="store_true", help="Tiny image and model, no dim-160 row (CI).")
    parser.add_argument(
        "--extra_images", nargs="*", default=[], help="More image files: a 'from_image + 1st sample' row for each."
    )
    return parser.parse_args(argv)


def timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def training_image(quick: bool) -> tuple[Image.Image, str]:
    if quick:
        from skimage import data

        return Image.fromarray(data.coffee()).resize((96, 64), Image.LANCZOS), "skimage coffee() at 96x64 (quick)"
    pyramid, note = balloons_pyramid()
    return pyramid.images[-1], note


def accuracy_rows(pipe: SinDDMPipeline) -> list[list[str]]:
    """At each scale > 0 (first and last step of the stage), on one sample's own inputs: the candidate search
    against the exact sum at the same query stride, and that stride against stride 1 (both exact)."""
    config = pipe.denoiser.config

    def exact_denoiser(strides):
        return SinDDMPatchDenoiser.from_pyramid(
            pipe.pyramid, pipe.scheduler, search="exact", query_strides=strides, patch_sizes=config.patch_sizes,
            paddings=config.paddings, guide_noise=config.guide_noise, window_rho=config.window_rho,
        ).to(pipe.device)

    exact_same_stride, exact_stride_1 = exact_denoiser(config.query_strides), exact_denoiser(1)
    calls: list[tuple] = []
    original = pipe.denoiser.predict

    def recording(sample, timestep, scale, blurry_sample=None):
        calls.append((sample, timestep, scale, blurry_sample))
        return original(sample, timestep, scale, blurry_sample)

    pipe.denoiser.predict = recording
    try:
        pipe(generator=torch.Generator(pipe.device).manual_seed(0))
    finally:
        del pipe.denoiser.predict

    def estimate(denoiser, sample, timestep, scale, blurry):
        noise = denoiser.predict(sample, timestep, scale, blurry)
        return pipe.scheduler.predict_original_sample(noise, timestep, sample)

    rows = []
    for scale in range(1, pipe.scheduler.num_scales):
        stage = [call for call in calls if call[2] == scale]
        for sample, timestep, _, blurry in (stage[0], stage[-1]):
            fast = estimate(pipe.denoiser, sample, timestep, scale, blurry)
            seconds, same = timed(lambda: estimate(exact_same_stride, sample, timestep, scale, blurry))  # noqa: B023
            dense = estimate(exact_stride_1, sample, timestep, scale, blurry)
            search, stride = (fast - same).abs(), (same - dense).abs()
            rows.append([str(scale), "x".join(map(str, sample.shape[-2:][::-1])), str(timestep),
                         f"{search.mean().item():.1e} / {search.max().item():.1e}", str(config.query_strides[scale]),
                         f"{stride.mean().item():.1e} / {stride.max().item():.1e}", f"{seconds:.2f}"])
            progress(f"accuracy scale {scale} t {timestep}: search {search.mean().item():.1e}, "
                     f"stride {stride.mean().item():.1e}")
    return rows


def cold_start(image: Image.Image, device: torch.device) -> SinDDMPipeline:
    """`SinDDMPipeline.from_image` and its first sample: what a user with a new image waits for."""
    pipe = SinDDMPipeline.from_image(image).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe(generator=torch.Generator(device).manual_seed(0))
    return pipe


def trained_sample_seconds(pyramid, dim: int, device: torch.device) -> tuple[float, int]:
    """Seconds of one exact sample (batch 1, every step) of a SinDDMModel of ``dim``, and its denoiser calls."""
    torch.manual_seed(0)
    trained = SinDDMPipeline(
        denoiser=SinDDMModel(dim=dim),
        scheduler=SinDDMScheduler.from_pyramid(pyramid),
        pyramid=SinDDMPyramid.from_pyramid(pyramid),
    ).to(device)
    trained.set_progress_bar_config(disable=True)
    trained(generator=torch.Generator(device).manual_seed(0), num_inference_steps=2)  # warm-up
    seconds, _ = timed(lambda: trained(generator=torch.Generator(device).manual_seed(0)))
    return seconds, trained.num_steps(trained.plan())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    image, image_note = training_image(args.quick)
    dim = 8 if args.quick else args.dim
    rows = []

    # a trained model's exact path, the reference of the ratio
    trained_s, steps = trained_sample_seconds(build_pyramid(image), dim, device)
    rows.append([f"trained dim {dim}, exact", str(steps), f"{trained_s:.2f}", "1.00", "reference"])
    progress(f"trained exact: {trained_s:.2f} s")

    # the training-free pipeline, from nothing
    cold_s, pipe = timed(lambda: cold_start(image, device))
    steps = pipe.num_steps(pipe.plan(), pipe.default_num_inference_steps(None))
    rows.append(["from_image + 1st sample", str(steps), f"{cold_s:.2f}", f"{cold_s / trained_s:.3f}",
                 "pyramid, candidate indexes, sampling"])
    progress(f"from_image + first sample: {cold_s:.2f} s")
    warm_s, _ = timed(lambda: pipe(generator=torch.Generator(device).manual_seed(1)))
    rows.append(["next sample", str(steps), f"{warm_s:.2f}", f"{warm_s / trained_s:.3f}", ""])
    batch_s, _ = timed(lambda: pipe(batch_size=8, generator=torch.Generator(device).manual_seed(2)))
    rows.append(["batch 8, per sample", str(steps), f"{batch_s / 8:.2f}", f"{batch_s / 8 / trained_s:.3f}", ""])
    progress(f"warm {warm_s:.2f} s, batch 8 {batch_s / 8:.2f} s/sample")
    for path in args.extra_images:
        extra = Image.open(path).convert("RGB")
        extra_s, extra_pipe = timed(lambda: cold_start(extra, device))  # noqa: B023
        size = "x".join(map(str, extra_pipe.pyramid.pil(extra_pipe.pyramid.num_scales - 1).size))
        rows.append([f"from_image + 1st sample: {Path(path).stem} ({size})", "", f"{extra_s:.2f}",
                     f"{extra_s / trained_s:.3f}", ""])
        progress(f"{path}: {extra_s:.2f} s")
    if args.megapixel:
        side = 256 if args.quick else 1024
        mega_s, out = timed(lambda: pipe(height=side, width=side, generator=torch.Generator(device).manual_seed(3)))
        assert out.images[0].size == (side, side)
        rows.append([f"{side}x{side} sample", str(pipe.num_steps(pipe.plan(height=side, width=side),
                                                                  pipe.default_num_inference_steps(None))),
                     f"{mega_s:.2f}", f"{mega_s / trained_s:.3f}", f"peak memory MB: {peak_memory_mb(device)}"])
        progress(f"{side}x{side}: {mega_s:.2f} s")

    config = pipe.denoiser.config
    notes = [
        f"{utc_now()}; {machine_description(device)}; torch {torch.__version__}",
        f"training image: {image_note}; ratio = seconds / the trained model's exact sample",
        f"training-free defaults: patch sizes {config.patch_sizes}, query strides {config.query_strides}, search "
        f"{config.search!r}, window cutoff {config.window_cutoff}, steps per scale {config.num_inference_steps}, "
        "second-order solver",
        f"commit: {commit()}",
    ]
    print_table("Training-free sampling vs a trained model's exact sampling",
                ["row", "denoiser calls", "seconds", "ratio", "note"], rows, notes)
    if args.accuracy:
        print_table(
            "The fast path against the exact sums (clean-image estimate, [-1, 1] units)",
            ["scale", "size", "t", "search vs exact: mean / max", "stride", "stride vs 1: mean / max", "exact call s"],
            accuracy_rows(pipe),
            ["search: candidate search (4 probes of ~2 sqrt(N) k-means clusters, 16 PCA dims) with the window cutoff "
             f"({config.window_cutoff}) against every reference and every patch pixel, at the default query "
             "stride; stride: that stride against stride 1 (both exact); the same "
             "inputs (one sample's own denoiser calls); 'exact call s': one exact call at the default stride"],
        )


def commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "n/a"


if __name__ == "__main__":
    main()
