"""Render the README's examples of the single-image tasks into ``docs/tasks/``, from images the project may ship: the
shipped hubble model (trained by us on `skimage.data.hubble_deep_field`) and, training-free, `skimage.data.coffee`
and `skimage.data.brick`.

    python scripts/render_task_examples.py                      # fast sampling (about 35 s on 2 CPU cores)
    python scripts/render_task_examples.py --exact --output_dir renders

Writes ``paint.png``, ``edit.png``, ``inpaint.png``, ``outpaint.png``, ``super_resolution.png``, ``tileable.png`` (each
a strip: the input(s), then the result(s)) and ``animation.gif``; refuses to write over existing files unless
``--overwrite``. Every call is seeded, so a run is reproducible on one machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from skimage import data

from sinddm_pipeline import (
    SinDDMAnimationPipeline,
    SinDDMInpaintPipeline,
    SinDDMPaintPipeline,
    SinDDMPipeline,
    SinDDMSuperResolutionPipeline,
    export_animation,
)
from sinddm_pipeline.plots import image_grid

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("paint.png", "edit.png", "inpaint.png", "outpaint.png", "super_resolution.png", "tileable.png")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def strip(images: list[Image.Image], height: int = 208, gap: int = 4) -> Image.Image:
    """The images side by side on white, each resized (NEAREST: the pixels as they are) to ``height``."""
    resized = [image.resize((round(image.width * height / image.height), height), Image.NEAREST) for image in images]
    canvas = Image.new("RGB", (sum(image.width for image in resized) + gap * (len(resized) - 1), height), "white")
    x = 0
    for image in resized:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    return canvas


def stacked(rows: list[Image.Image], gap: int = 4) -> Image.Image:
    """The rows one above the other on white, left-aligned."""
    canvas = Image.new("RGB", (max(row.width for row in rows), sum(row.height for row in rows) + gap * (len(rows) - 1)))
    canvas.paste("white", (0, 0, *canvas.size))
    y = 0
    for row in rows:
        canvas.paste(row, (0, y))
        y += row.height + gap
    return canvas


def outlined(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """``image`` with ``box`` (left, top, right, bottom) outlined in red: where the user marked the region."""
    image = image.copy()
    ImageDraw.Draw(image).rectangle(box, outline=(255, 40, 40), width=2)
    return image


def shown_hole(image: Image.Image, mask: Image.Image) -> Image.Image:
    """``image`` with its hole (``mask`` white) grey, as the user sees the input of inpainting."""
    grey = Image.new("RGB", image.size, (128, 128, 128))
    return Image.composite(grey, image, mask)


def seam_view(tile: Image.Image) -> Image.Image:
    """Four copies of ``tile`` side by side, cropped to one tile's size around the point where they meet: the
    seams run through the middle, horizontally and vertically."""
    width, height = tile.size
    four = image_grid([tile] * 4, columns=2, padding=0)
    return four.crop((width // 2, height // 2, width // 2 + width, height // 2 + height))


def render(output_dir: Path, exact: bool) -> list[Path]:
    pipe = SinDDMPipeline.from_pretrained(ROOT / "models" / "hubble-sinddm")
    pipe.set_progress_bar_config(disable=True)
    if not exact:
        pipe.enable_fast_sampling()
    training = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # 239x208
    written = []

    def save(image: Image.Image, name: str) -> None:
        image.save(output_dir / name)
        written.append(output_dir / name)

    paint, inpaint, upscale, animation = (
        task.from_pipe(pipe)
        for task in (SinDDMPaintPipeline, SinDDMInpaintPipeline, SinDDMSuperResolutionPipeline, SinDDMAnimationPipeline)
    )
    for task in (paint, inpaint, upscale, animation):
        task.set_progress_bar_config(disable=True)
    sketch = Image.open(ROOT / "examples" / "app" / "painting.png").convert("RGB")  # make_examples.py draws it
    results = paint(sketch, batch_size=2, generator=seeded(0)).images
    save(strip([sketch, *results]), "paint.png")

    edited = training.copy()
    galaxy = training.crop((150, 85, 195, 130)).resize((90, 90), Image.BICUBIC)  # a bright galaxy, enlarged 2x
    edited.paste(galaxy, (20, 105))  # pasted into the lower left, with its square background
    box = (20, 105, 110, 195)
    mask = Image.new("L", training.size)
    mask.paste(255, box)
    blended = paint(edited, mask_image=mask, start_scale=2, batch_size=2, generator=seeded(0)).images
    save(strip([outlined(edited, box), *blended]), "edit.png")

    hole = Image.new("L", training.size)
    hole.paste(255, (70, 50, 170, 150))
    filled = inpaint(training, mask_image=hole, batch_size=2, generator=seeded(0)).images
    coffee = SinDDMInpaintPipeline.from_pipe(SinDDMPipeline.from_image(data.coffee()))  # training-free
    coffee.set_progress_bar_config(disable=True)
    cup = coffee.pyramid.pil(coffee.pyramid.num_scales - 1)
    cup_hole = Image.new("L", cup.size)
    cup_hole.paste(255, (30, 100, 110, 170))
    cup_filled = coffee(cup, mask_image=cup_hole, generator=seeded(0)).images[0]
    save(stacked([strip([shown_hole(training, hole), *filled]), strip([shown_hole(cup, cup_hole), cup_filled])]),
         "inpaint.png")

    wider = inpaint(training, left=120, right=120, generator=seeded(0)).images[0]
    save(strip([training, wider]), "outpaint.png")

    crop = training.crop((60, 50, 160, 130))  # 100x80 -> 400x320
    sharp = upscale(crop, upscale_factor=4, generator=seeded(0)).images[0]
    save(strip([crop.resize(sharp.size, Image.BICUBIC), sharp], height=sharp.height), "super_resolution.png")

    bricks = SinDDMPipeline.from_image(data.brick(), max_pixels=128 * 128)  # training-free, a texture
    bricks.set_progress_bar_config(disable=True)
    plain = bricks(generator=seeded(0)).images[0]
    tile = bricks(tileable=True, generator=seeded(0)).images[0]
    save(strip([seam_view(plain), seam_view(tile)], height=2 * plain.height), "tileable.png")

    frames = animation(num_frames=16, generator=seeded(0)).frames
    written.append(export_animation(frames, output_dir / "animation.gif", fps=8))
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=Path, default=ROOT / "docs" / "tasks")
    parser.add_argument("--exact", action="store_true", help="Every denoising step (default: fast sampling).")
    parser.add_argument("--overwrite", action="store_true", help="Replace files already in --output_dir.")
    args = parser.parse_args(argv)
    existing = [name for name in (*OUTPUTS, "animation.gif") if (args.output_dir / name).exists()]
    if existing and not args.overwrite:
        parser.error(f"{args.output_dir} already holds {existing}; pass --overwrite to replace them.")
    for name in existing:
        (args.output_dir / name).unlink()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    written = render(args.output_dir, args.exact)
    print(f"{len(written)} files in {time.time() - start:.0f} s:", *written, sep="\n")
    return written


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
