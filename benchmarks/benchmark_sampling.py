"""Sampling latency and throughput of SinDDMPipeline (the exact path), batch 1 and 16.

    python benchmarks/benchmark_sampling.py            # dim 160 (the paper's model), balloons sizes
    python benchmarks/benchmark_sampling.py --quick    # tiny model, one repeat (what CI runs)

Weights are random: the cost of sampling does not depend on them.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import balloons_pyramid, machine_description, peak_memory_mb, print_table, time_call

from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dim 8, batch 1 and 2, one repeat")
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.quick:
        args.dim, args.batch_sizes, args.repeats = 8, [1, 2], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    pyramid, image_name = balloons_pyramid()
    torch.manual_seed(0)
    pipe = SinDDMPipeline(
        SinDDMModel(dim=args.dim), SinDDMScheduler.from_pyramid(pyramid), SinDDMPyramid.from_pyramid(pyramid)
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    steps = pipe.num_steps(pipe.plan())

    rows = []
    for batch in args.batch_sizes:
        generator = torch.Generator(device).manual_seed(0)
        times = time_call(
            lambda b=batch, g=generator: pipe(batch_size=b, generator=g, output_type="pt"), device, args.repeats
        )
        best, median = min(times), float(np.median(times))
        rows.append([str(batch), f"{best:.3f}", f"{median:.3f}", f"{batch / best:.2f}", peak_memory_mb(device)])
    print_table(
        "SinDDM sampling, exact path (fp32)",
        ["batch", "best s", "median s", "images/s", "peak MB"],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}",
            f"model: dim {args.dim}, {sum(p.numel() for p in pipe.denoiser.parameters()):,} parameters",
            f"image: {image_name}, {pipe.pyramid.num_scales} scales, {steps} denoising steps per sample",
            f"repeats: {args.repeats} after one warm-up",
        ],
    )
    return rows


if __name__ == "__main__":
    main()
