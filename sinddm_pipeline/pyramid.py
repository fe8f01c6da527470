"""The multi-scale image pyramid of SinDDM (SPEC §1): scale sizes, pyramid and blurry images, rescale losses.

Everything here is a pure function on PIL images and numbers, so it can be checked against the reference
implementation's golden vectors bit for bit.

Example:
    >>> from PIL import Image
    >>> from sinddm_pipeline.pyramid import build_pyramid
    >>> pyramid = build_pyramid(Image.new("RGB", (248, 186), "white"))
    >>> pyramid.sizes[0], pyramid.sizes[-1], pyramid.num_scales
    ((64, 48), (248, 186), 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 50_000
DEFAULT_SCALE_FACTOR = 1.411
# Chosen by the authors so that the denoiser's ~35 px receptive field covers ~40% of the coarsest scale.
COARSEST_AREA = 3110
COARSEST_SHORT_SIDE_RANGE = (42, 55)


@dataclass(frozen=True)
class Pyramid:
    """The scales of one training image, coarsest first.

    Attributes:
        images: the image at every scale (RGB PIL images).
        blurry: for scales i > 0, scale i - 1 resized up to scale i (``blurry[0]`` is ``None``).
        sizes: (width, height) of every scale, as PIL reports it.
        scale_factor: the actual factor r between consecutive scales.
        rescale_losses: L_i for scales i > 0 (length ``num_scales - 1``).
    """

    images: list[Image.Image]
    blurry: list[Image.Image | None]
    sizes: list[tuple[int, int]]
    scale_factor: float
    rescale_losses: list[float]

    @property
    def num_scales(self) -> int:
        return len(self.sizes)


def capped_size(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) scaled down (keeping the aspect ratio) so that it holds at most about ``max_pixels`` pixels.

    >>> capped_size(1000, 500)
    (316, 158)
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}.")
    k = math.sqrt(width * height / max_pixels)
    if k > 1:
        return int(width / k), int(height / k)
    return width, height


def coarsest_short_side(width: int, height: int) -> int:
    """The short side of the coarsest scale: round(sqrt(3110 * short / long)) clamped to [42, 55]."""
    short, long = min(width, height), max(width, height)
    c = int(round(math.sqrt(COARSEST_AREA * short / long)))
    low, high = COARSEST_SHORT_SIDE_RANGE
    return min(max(c, low), high)


def scale_sizes(
    width: int, height: int, scale_factor: float = DEFAULT_SCALE_FACTOR
) -> tuple[list[tuple[int, int]], float]:
    """Sizes (width, height) of every scale, coarsest first, and the actual factor between scales.

    ``width``/``height`` is the (already capped) size of the finest scale.

    >>> sizes, r = scale_sizes(248, 186)
    >>> sizes
    [(64, 48), (90, 67), (126, 94), (177, 133), (248, 186)]
    >>> round(r, 5)
    1.40303
    """
    if scale_factor <= 1:
        raise ValueError(f"scale_factor must be > 1, got {scale_factor}.")
    short = min(width, height)
    c = coarsest_short_side(width, height)
    if short <= c:
        raise ValueError(
            f"The image ({width}x{height}) is too small for SinDDM: its short side must be larger than the "
            f"coarsest scale's ({c} px) to give at least two scales."
        )
    num_scales = int(round(np.log(short / c) / np.log(scale_factor)) + 1)
    if num_scales < 2:
        raise ValueError(
            f"The image ({width}x{height}) is too small for SinDDM: it gives {num_scales} scale(s), at least 2 are "
            f"needed (short side > about {c * scale_factor**0.5:.0f} px)."
        )
    r = float(np.exp(np.log(short / c) / (num_scales - 1)))
    sizes = []
    for i in range(num_scales):
        divisor = np.power(r, num_scales - i - 1)
        sizes.append((int(round(width / divisor)), int(round(height / divisor))))
    return sizes, r


def rescale_loss(image: Image.Image, blurry: Image.Image) -> float:
    """||image - blurry||_2 / number of elements, on uint8 arrays.

    Like the reference, the uint8 arrays are subtracted directly, so differences wrap around modulo 256:
    the noise schedule of every published model depends on this quirk.
    """
    a, b = np.asarray(image), np.asarray(blurry)
    if a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape != b.shape:
        raise ValueError("rescale_loss expects two uint8 images of the same size.")
    return float(np.linalg.norm(np.subtract(a, b)) / b.size)


def build_pyramid(
    image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, scale_factor: float = DEFAULT_SCALE_FACTOR
) -> Pyramid:
    """The pyramid of a training image: scales, blurry images and rescale losses (SPEC §1).

    Every scale is resized (LANCZOS) straight from the given image, as the reference does, so an image larger
    than ``max_pixels`` is resampled once per scale, never twice.
    """
    image = image.convert("RGB")
    width, height = capped_size(*image.size, max_pixels=max_pixels)
    sizes, r = scale_sizes(width, height, scale_factor)
    images = [image.resize(size, Image.LANCZOS) for size in sizes]
    blurry: list[Image.Image | None] = [None]
    losses = []
    for i in range(1, len(sizes)):
        up = images[i - 1].resize(sizes[i], Image.BILINEAR)
        blurry.append(up)
        losses.append(rescale_loss(images[i], up))
    return Pyramid(images=images, blurry=blurry, sizes=sizes, scale_factor=r, rescale_losses=losses)


def pil_to_tensor(image: Image.Image):
    """An RGB PIL image as a float tensor (1, 3, H, W) in [-1, 1]."""
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1
