"""Training throughput (ms per step) of the exact recipe: balloons sizes, batch 32, L1 loss, Adam.

    python benchmarks/benchmark_training.py            # dim 160, batch 32, every scale
    python benchmarks/benchmark_training.py --quick    # tiny model and batch (what CI runs)

The step time depends on the scale (the finest has ~15x the pixels of the coarsest); the table gives each scale
and the mean over scales, which is the expected time of a step of the recipe (scales are drawn uniformly).
"""

from __future__ import annotations

import argparse

import torch
from common import balloons_pyramid, machine_description, peak_memory_mb, print_table, time_call

from sinddm_pipeline import SinDDMModel, SinDDMScheduler
from sinddm_pipeline.training import TrainingData, training_loss


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dim 8, batch 2, one repeat")
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--crop_size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.quick:
        args.dim, args.batch_size, args.repeats = 8, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    pyramid, image_name = balloons_pyramid()
    torch.manual_seed(0)
    model = SinDDMModel(dim=args.dim).to(device)
    scheduler = SinDDMScheduler.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def step(scale: int) -> None:
        x, blurry = data.batch(scale, args.batch_size, args.crop_size, generator=generator)
        loss = training_loss(model, scheduler, x, blurry, scale, generator=generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rows, means = [], []
    for scale in range(pyramid.num_scales):
        best = min(time_call(lambda s=scale: step(s), device, args.repeats))
        means.append(best)
        width, height = pyramid.sizes[scale]
        rows.append([str(scale), f"{width}x{height}", f"{best * 1000:.1f}"])
    rows.append(["mean", "", f"{sum(means) / len(means) * 1000:.1f}"])
    print_table(
        "SinDDM training step, exact recipe (fp32)",
        ["scale", "size", "ms/step"],
        rows,
        [
            f"device: {machine_description(device)}; torch {torch.__version__}",
            f"model: dim {args.dim}; batch {args.batch_size}; crops: {args.crop_size or 'none (whole images)'}",
            f"image: {image_name}; best of {args.repeats} after one warm-up; peak memory MB: {peak_memory_mb(device)}",
        ],
    )
    return rows


if __name__ == "__main__":
    main()
