"""Command line generation: `python -m sinddm_pipeline.generate --model models/hubble-sinddm --num_images 8`.

From any image, with no training (the training-free patch denoiser): `python -m sinddm_pipeline.generate --image
my.jpg --num_images 8`.

Fast: `... --dtype bf16 --channels_last --solver_order 2 --num_inference_steps 10 6 5 4 3` (benchmarks/RESULTS.md).

Writes one PNG per sample (and optionally a grid) into --output_dir, never over existing files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from .pipeline_sinddm import SinDDMPipeline
from .plots import image_grid
from .sampling_options import add_sampling_arguments, apply_sampling_options, steps_argument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate images with a SinDDM pipeline.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="A pipeline folder or a Hub repo id.")
    source.add_argument(
        "--image", help="An image file: sample from it directly, with no training (SinDDMPipeline.from_image)."
    )
    parser.add_argument("--output_dir", default="samples")
    parser.add_argument("--num_images", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height_scale", type=float, default=1.0)
    parser.add_argument("--width_scale", type=float, default=1.0)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--grid", default=None, help="Also save all samples as one grid image at this path.")
    parser.add_argument("--grid_columns", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.batch_size < 1:
        parser.error("--num_images and --batch_size must be >= 1.")
    return args


def load_pipeline(args: argparse.Namespace) -> SinDDMPipeline:
    """The pipeline of ``--model`` (a folder or Hub id) or, with ``--image``, the training-free one of that image."""
    if getattr(args, "image", None) is not None and args.model is None:
        return SinDDMPipeline.from_image(args.image)
    return SinDDMPipeline.from_pretrained(args.model)


def next_free_path(folder: str, stem: str, suffix: str = ".png") -> str:
    """``folder/stem_0000.png``, or the next number not yet taken."""
    index = 0
    while os.path.exists(path := os.path.join(folder, f"{stem}_{index:04d}{suffix}")):
        index += 1
    return path


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    pipe = load_pipeline(args).to(args.device)
    apply_sampling_options(pipe, args)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    images, start = [], time.time()
    while len(images) < args.num_images:
        batch = min(args.batch_size, args.num_images - len(images))
        images += pipe(
            batch_size=batch,
            generator=generator,
            height_scale=args.height_scale,
            width_scale=args.width_scale,
            height=args.height,
            width=args.width,
            num_inference_steps=steps_argument(args),
        ).images
    elapsed = time.time() - start
    os.makedirs(args.output_dir, exist_ok=True)
    paths = []
    for image in images:
        path = next_free_path(args.output_dir, "sample")
        image.save(path)
        paths.append(path)
    if args.grid:
        if os.path.exists(args.grid):
            raise FileExistsError(f"--grid {args.grid!r} already exists; choose another path.")
        image_grid(images, columns=args.grid_columns).save(args.grid)
        paths.append(args.grid)
    print(f"{len(images)} images of {images[0].width}x{images[0].height} in {elapsed:.1f} s on {args.device}:")
    print("\n".join(paths))
    return paths


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileExistsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
