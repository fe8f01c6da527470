"""Render the SinDDM paper's image-to-image inputs with a trained model: harmonization and style transfer (SPEC §6).

The paper's inputs live in ``../shared/images/i2i/<training image>/``: naive composites with their masks
(``*_composite_*`` + ``*_mask_*``, or ``name`` + ``name_mask``) are harmonized, every other image is a content image
for style transfer. By default the folder is chosen by comparing the model's stored training image with
``../shared/images/<name>.png``; ``--inputs`` names any folder instead.

    python examples/render_i2i.py --model models/seascape --output_dir renders/seascape
    python examples/render_i2i.py --model user/seascape-sinddm --output_dir out --inputs my_inputs --num_samples 4

Writes ``<output_dir>/<input stem>_harmonized_<k>.png`` and ``<input stem>_style_transfer_<k>.png`` (k = 0 ..
num_samples - 1), plus ``<input stem>_input.png``, the input as the pipeline saw it (resized to 50,000 px).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sinddm_pipeline import SinDDMImg2ImgPipeline
from sinddm_pipeline.image_inputs import capped_size, prepare_image

logger = logging.getLogger("render_i2i")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_I2I_ROOT = Path(__file__).resolve().parents[2] / "shared" / "images" / "i2i"


@dataclass
class Job:
    """One input: harmonization when ``mask`` is set, else style transfer."""

    image: Path
    mask: Path | None = None

    @property
    def task(self) -> str:
        return "harmonized" if self.mask is not None else "style_transfer"


def find_jobs(folder: Path) -> list[Job]:
    """Pair every mask (a file whose name contains "mask") with its composite; the other images are content images.

    A mask ``a_mask_b`` belongs to ``a_composite_b``, a mask ``name_mask`` to ``name`` (any image extension).
    """
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    masks = [p for p in images if "mask" in p.stem.lower()]
    by_stem = {p.stem: p for p in images if p not in masks}
    jobs, used = [], set()
    for mask in masks:
        candidates = [mask.stem.replace("_mask", ""), mask.stem.replace("mask", "composite")]
        composite = next((by_stem[c] for c in candidates if c in by_stem), None)
        if composite is None:
            logger.warning(f"{mask.name}: no composite found (tried {candidates}); skipped.")
            continue
        jobs.append(Job(image=composite, mask=mask))
        used.add(composite)
    jobs += [Job(image=p) for p in by_stem.values() if p not in used]
    return jobs


def identify_inputs(pipe: SinDDMImg2ImgPipeline, root: Path) -> Path:
    """The subfolder of ``root`` whose training image (``root/../<name>.png``) is the model's finest scale."""
    finest = np.asarray(pipe.pyramid.pil(pipe.pyramid.num_scales - 1), dtype=np.float64)
    scores = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        training = root.parent / f"{folder.name}.png"
        if not training.exists():
            continue
        with Image.open(training) as opened:
            rgb = opened.convert("RGB")
        candidate = np.asarray(rgb.resize(capped_size(*rgb.size), Image.LANCZOS), dtype=np.float64)
        if candidate.shape == finest.shape:
            scores[folder] = float(np.abs(candidate - finest).mean())
    if not scores or min(scores.values()) > 8.0:
        raise SystemExit(
            f"Cannot tell which folder of {root} holds this model's inputs (its training image is "
            f"{finest.shape[1]}x{finest.shape[0]} px and matches none of {root.parent}/<name>.png); pass --inputs."
        )
    return min(scores, key=scores.get)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A saved SinDDM pipeline: a folder or a Hub repo id.")
    parser.add_argument("--output_dir", required=True, help="Where the PNGs are written.")
    parser.add_argument("--inputs", default=None, help="A folder of inputs (default: found under --i2i_root).")
    parser.add_argument("--i2i_root", default=str(DEFAULT_I2I_ROOT), help="The paper's i2i folder.")
    parser.add_argument("--num_samples", type=int, default=1, help="Results per input (a batch).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style_timestep", type=int, default=None, help="Style transfer's start t (default 15).")
    parser.add_argument("--harmonization_timestep", type=int, default=None, help="Harmonization's t (default 5).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f"--num_samples must be >= 1, got {args.num_samples}.")
    return args


def main(args: argparse.Namespace) -> list[Path]:
    """Render every input; returns the written result paths."""
    pipe = SinDDMImg2ImgPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    folder = Path(args.inputs) if args.inputs else identify_inputs(pipe, Path(args.i2i_root))
    jobs = find_jobs(folder)
    if not jobs:
        raise SystemExit(f"No images in {folder}.")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    logger.info(f"{len(jobs)} inputs from {folder} -> {output_dir}")

    written = []
    for job in jobs:
        image = Image.open(job.image)
        mask = Image.open(job.mask) if job.mask is not None else None
        timestep = args.harmonization_timestep if mask is not None else args.style_timestep
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
        start = time.perf_counter()
        results = pipe(
            image, mask_image=mask, start_timestep=timestep, batch_size=args.num_samples, generator=generator
        ).images
        seconds = time.perf_counter() - start
        prepare_image(image, name=job.image.name).save(output_dir / f"{job.image.stem}_input.png")
        for index, result in enumerate(results):
            path = output_dir / f"{job.image.stem}_{job.task}_{index}.png"
            result.save(path)
            written.append(path)
        detail = f" (mask {job.mask.name})" if job.mask is not None else ""
        logger.info(f"{job.image.name}{detail}: {job.task}, {results[0].size[0]}x{results[0].size[1]}, {seconds:.1f} s")
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    main(parse_args())
