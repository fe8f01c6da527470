"""Command line generation: `python -m sinddm_pipeline.generate --model models/hubble-sinddm --num_images 8`.

From any image, with no training (the training-free patch denoiser): `python -m sinddm_pipeline.generate --image
my.jpg --num_images 8`. Every task below takes either source, ``--model DIR|repo`` or ``--image FILE``:

- sample (default): `... --model models/hubble-sinddm --num_images 8 --width_scale 1.5 [--tileable]`
- paint: `... --model models/hubble-sinddm --task paint --input painting.png [--start_scale 1 --width 320]`
- edit: `... --model models/hubble-sinddm --task edit --input edited.png --mask mask.png [--start_scale 2]`
- inpaint: `... --model models/hubble-sinddm --task inpaint --input photo.png --mask hole.png [--resample_steps 5]`
- outpaint: `... --model models/hubble-sinddm --task outpaint --input photo.png --left 60 --right 60`
- super_resolution: `... --model models/hubble-sinddm --task super_resolution --input photo.png --upscale_factor 2`
- animate: `... --model models/hubble-sinddm --task animate --num_frames 16 --fps 10 [--animation_format mp4]`

Fast: `... --dtype bf16 --channels_last --solver_order 2 --num_inference_steps 10 6 5 4 3` (benchmarks/RESULTS.md).

Writes one PNG per image, named after the task (``sample_0000.png``, ``paint_0000.png``, ...; optionally a grid), or
one ``animation_0000.gif`` (``.mp4``), into --output_dir, never over existing files. Options that the task does not
take are refused (`sinddm_pipeline.generate_tasks`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from .animation_export import export_animation
from .generate_tasks import (
    TASKS,
    add_task_arguments,
    call_arguments,
    check_task_arguments,
    load_task_inputs,
    task_pipeline,
)
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_task_arguments(parser)
    add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    check_task_arguments(parser, args)
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
    if getattr(args, "grid", None) and os.path.exists(args.grid):
        raise FileExistsError(f"--grid {args.grid!r} already exists; choose another path.")
    inputs = load_task_inputs(args)  # a missing or unreadable file fails before the model loads
    pipe = task_pipeline(args, load_pipeline(args)).to(args.device)
    apply_sampling_options(pipe, args)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    kwargs = {**inputs, **call_arguments(args), "generator": generator, "num_inference_steps": steps_argument(args)}
    start = time.time()
    if args.task == "animate":
        frames = pipe(**kwargs).frames
        elapsed = time.time() - start
        os.makedirs(args.output_dir, exist_ok=True)
        path = next_free_path(args.output_dir, TASKS[args.task].stem, f".{args.animation_format}")
        paths = [str(export_animation(frames, path, fps=args.fps))]
        print(f"{len(frames)} frames of {frames[0].width}x{frames[0].height} in {elapsed:.1f} s on {args.device}:")
    else:
        images = []
        while len(images) < args.num_images:
            images += pipe(**kwargs, batch_size=min(args.batch_size, args.num_images - len(images))).images
        elapsed = time.time() - start
        paths = write_images(images, args)
        print(f"{len(images)} images of {images[0].width}x{images[0].height} in {elapsed:.1f} s on {args.device}:")
    print("\n".join(paths))
    return paths


def write_images(images: list, args: argparse.Namespace) -> list[str]:
    """Each image as ``--output_dir/<task stem>_NNNN.png`` (the next free numbers), and the ``--grid``."""
    os.makedirs(args.output_dir, exist_ok=True)
    paths = []
    for image in images:
        path = next_free_path(args.output_dir, TASKS[args.task].stem)
        image.save(path)
        paths.append(path)
    if args.grid:
        image_grid(images, columns=args.grid_columns).save(args.grid)
        paths.append(args.grid)
    return paths


def cli(argv: list[str] | None = None) -> int:
    """`main`, with its errors (a bad input, mask, margin or factor, an existing path) as ``error: ...`` and exit
    status 2, as argparse reports a bad command line."""
    try:
        main(argv)
    except (ValueError, FileExistsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
