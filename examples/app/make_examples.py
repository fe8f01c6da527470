"""Make the web app's example images (examples/app/*.png) from scikit-image's sample data and the shipped model.

    python examples/app/make_examples.py

- content.png: scikit-image's ``chelsea`` (a cat), 200 px wide, for the Style transfer tab;
- composite.png / composite_mask.png: the shipped model's training image with a patch of ``coffee`` pasted in,
  and the mask of that patch, for the Harmonize tab;
- train.png: scikit-image's ``rocket``, 160 px wide, for the Train tab;
- painting.png: a rough painting in the shipped model's colours (a dark sky, a few galaxies as blobs), for the Paint
  to image tab (and `scripts/render_task_examples.py`);
- crop.png: a 100x80 crop of the shipped model's training image, for the Super-resolution and Outpaint tabs.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw
from skimage import data

from sinddm_pipeline import SinDDMPyramid

HERE = Path(__file__).resolve().parent
MODEL = HERE.parents[1] / "models" / "hubble-sinddm"


def resized(array, width: int) -> Image.Image:
    """A numpy RGB array as a PIL image ``width`` px wide (aspect kept)."""
    image = Image.fromarray(array).convert("RGB")
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def painting() -> Image.Image:
    """A rough painting in the hubble image's colours: a dark sky, a few galaxies as blobs."""
    canvas = Image.new("RGB", (160, 100), (8, 8, 14))
    draw = ImageDraw.Draw(canvas)
    for (x, y, r), colour in zip(
        [(40, 30, 9), (110, 60, 12), (75, 80, 5), (135, 20, 4), (20, 75, 6)],
        [(235, 170, 100), (250, 210, 160), (150, 180, 255), (255, 255, 255), (230, 120, 80)],
        strict=True,
    ):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return canvas


def main() -> None:
    resized(data.chelsea(), 200).save(HERE / "content.png")
    resized(data.rocket(), 160).save(HERE / "train.png")
    pyramid = SinDDMPyramid.from_pretrained(MODEL / "pyramid")
    background = pyramid.pil(pyramid.num_scales - 1)
    patch = resized(data.coffee(), 64)
    box = (background.width // 2 - patch.width // 2, background.height // 2 - patch.height // 2)
    background.paste(patch, box)
    background.save(HERE / "composite.png")
    mask = Image.new("L", background.size, 0)
    mask.paste(255, (*box, box[0] + patch.width, box[1] + patch.height))
    mask.save(HERE / "composite_mask.png")
    painting().save(HERE / "painting.png")
    pyramid.pil(pyramid.num_scales - 1).crop((60, 50, 160, 130)).save(HERE / "crop.png")


if __name__ == "__main__":
    main()
