"""What paint-to-image, editing, inpainting and outpainting share: a given image at every stage size, the known
pixels kept in every clean-image estimate, and the feathered blend of the result into the input.

- `resize` brings an image (or a weight) to a stage's size, antialiased, so a coarse stage sees the image as the
  pyramid would;
- [`KnownPixels`] holds, per stage, the known image and where it is known, and `KnownPixels.keep` puts it into a
  clean-image estimate: the hook that the inpainting and editing pipelines give every step of every stage, so the
  generated region grows consistent with the kept pixels at every scale, and at t = 0 the kept pixels come out;
- `feathered_weight` and `blend` merge the result into the input: 1 inside the mask, falling linearly to 0 at
  ``radius`` pixels from it (a distance transform), so pixels at least ``radius`` away from the mask are the
  input's exactly.

Example:
    >>> import numpy as np
    >>> import torch
    >>> from sinddm_pipeline.known_pixels import KnownPixels, feathered_weight
    >>> from sinddm_pipeline.retargeting import Stage
    >>> mask = np.zeros((40, 60), dtype=bool)
    >>> mask[10:20, 20:30] = True  # the hole
    >>> weight = feathered_weight(mask, radius=4)
    >>> float(weight[15, 25]), float(weight[15, 31]), float(weight[15, 33])  # inside, 2 px out, 4 px out
    (1.0, 0.5, 0.0)
    >>> image = torch.zeros(1, 3, 40, 60)
    >>> known = KnownPixels.build(image, torch.from_numpy(weight == 0), [Stage(0, (20, 30)), Stage(1, (40, 60))])
    >>> [tuple(w.shape[-2:]) for w in known.weights]
    [(20, 30), (40, 60)]
    >>> known.keep(torch.ones(1, 3, 40, 60), 1)[0, 0, 0, 0].item()  # a known pixel: the image's
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import distance_transform_edt

from .image_inputs import MAX_PIXELS, prepare_image, prepare_mask
from .limits import check_count
from .retargeting import Stage

FEATHER_RADIUS = 8
"""Default width in pixels of the blend between the result and the input around a mask (see `feathered_weight`)."""
MAX_FEATHER_RADIUS = 64
"""The widest blend allowed."""
MASK_THRESHOLD = 0.5
"""Mask values at or above this mark the region to work on (a resized mask has soft edges)."""
FULLY_KNOWN = 0.999
"""A stage pixel is known when at least this much of it (its resized known-weight) covers known pixels."""


def resize(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``image`` (N, C, H, W) resized to ``size`` = (height, width): bilinear with antialiasing (a downsized image
    is averaged, not aliased); unchanged at its own size.

    >>> resize(torch.ones(1, 3, 40, 60), (20, 30)).shape
    torch.Size([1, 3, 20, 30])
    """
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


def binary_mask(mask: np.ndarray, name: str = "mask_image") -> np.ndarray:
    """A [0, 1] mask (from `~sinddm_pipeline.image_inputs.prepare_mask`) as booleans: values >= 0.5 mark the region.

    Raises:
        ValueError: when the region is empty or covers the whole image (nothing to fill, or nothing to keep).

    >>> binary_mask(np.array([[0.0, 0.7], [0.2, 1.0]])).tolist()
    [[False, True], [False, True]]
    """
    region = np.asarray(mask) >= MASK_THRESHOLD
    if not region.any():
        raise ValueError(
            f"{name}: no pixel of the mask is at least {MASK_THRESHOLD} (white marks the region); the mask is empty."
        )
    if region.all():
        raise ValueError(
            f"{name}: the mask covers the whole image; white must mark only part of it, and the rest is kept."
        )
    return region


def check_feather_radius(feather_radius: int) -> None:
    """``feather_radius`` must be an int in [0, `MAX_FEATHER_RADIUS`] (pixels).

    >>> check_feather_radius(8)
    >>> check_feather_radius(-1)
    Traceback (most recent call last):
        ...
    ValueError: feather_radius must be an int in [0, 64], got -1.
    """
    check_count("feather_radius", feather_radius, 0, MAX_FEATHER_RADIUS)


def feathered_weight(mask: np.ndarray, radius: int) -> np.ndarray:
    """The blending weight of a (height, width) boolean mask: 1 on the mask, ``1 - d / radius`` at distance d
    (Euclidean, in pixels) from it, 0 from ``radius`` on (``radius`` 0: the mask itself).

    Pixels with weight 0 (at least ``radius`` from the mask) keep the input exactly in `blend`.

    >>> mask = np.zeros((1, 9), dtype=bool)
    >>> mask[0, 0] = True
    >>> feathered_weight(mask, 4).round(2).tolist()
    [[1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    mask = np.asarray(mask, dtype=bool)
    if radius == 0:
        return mask.astype(np.float64)
    distance = distance_transform_edt(~mask)
    return np.clip(1.0 - distance / radius, 0.0, 1.0)


def masked_input(image, mask_image, feather_radius: int, region: str) -> tuple[Image.Image, np.ndarray]:
    """The input of a masked task (editing, inpainting): ``image`` capped at 50,000 px like training images, and the
    blend weight (`feathered_weight`) of its ``region`` (``mask_image`` >= 0.5, resized to the image).

    Raises:
        ValueError: for inputs that are not images, an empty or full mask, or a ``region`` so large once dilated by
            ``feather_radius`` that no pixel is kept.

    >>> mask = np.zeros((60, 80))
    >>> mask[20:40, 30:50] = 1
    >>> image, weight = masked_input(np.zeros((60, 80, 3), dtype=np.uint8), mask, 4, "hole")
    >>> image.size, float(weight[30, 40]), float(weight[30, 52]), float(weight[0, 0])
    ((80, 60), 1.0, 0.25, 0.0)
    """
    rgb = prepare_image(image, name="image", max_pixels=None)
    original_size = rgb.size
    rgb = prepare_image(rgb, name="image", max_pixels=MAX_PIXELS)
    region = binary_mask(prepare_mask(mask_image, rgb.size, "mask_image", original_size))
    weight = feathered_weight(region, feather_radius)
    if not (weight == 0).any():
        raise ValueError(
            f"mask_image: the {region} dilated by feather_radius ({feather_radius} px) covers the whole image, so no "
            "pixel is kept; use a smaller mask or feather_radius."
        )
    return rgb, weight


def blend(generated: torch.Tensor, original: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``weight · generated + (1 - weight) · original``: exactly ``original`` where ``weight`` is 0.

    >>> blend(torch.ones(1, 3, 1, 2), torch.zeros(1, 3, 1, 2), torch.tensor([[[[0.25, 0.0]]]]))[0, 0].tolist()
    [[0.25, 0.0]]
    """
    weight = weight.to(device=generated.device, dtype=generated.dtype)
    return torch.where(weight > 0, weight * generated + (1 - weight) * original.to(generated.dtype), original)


@dataclass(frozen=True)
class KnownPixels:
    """The known image at every stage's size and where it is known: ``images[i]`` (1, 3, h, w) in [-1, 1] and
    ``weights[i]`` (1, 1, h, w), 1 where the stage's pixel lies wholly on known pixels, else 0.

    >>> known = torch.ones(40, 60, dtype=torch.bool)
    >>> known[:, 30:] = False  # the right half is the hole
    >>> pixels = KnownPixels.build(torch.zeros(1, 3, 40, 60), known, [Stage(0, (20, 30)), Stage(1, (40, 60))])
    >>> [int(weight.sum()) for weight in pixels.weights]  # known pixels per stage
    [280, 1200]
    """

    images: list[torch.Tensor]
    weights: list[torch.Tensor]

    @classmethod
    def build(cls, image: torch.Tensor, known: torch.Tensor, stages: Sequence[Stage]) -> KnownPixels:
        """From ``image`` (1, 3, H, W) in [-1, 1] at the last stage's size and ``known`` (H, W), true where the
        image is kept. Each stage gets the known pixels averaged to its size (`resize`, normalised by the resized
        weight, so unknown pixels never leak in) and is known where that average covers known pixels only."""
        known = known.to(device=image.device, dtype=image.dtype)[None, None]
        images, weights = [], []
        for stage in stages:
            coverage = resize(known, stage.size)
            average = resize(image * known, stage.size) / coverage.clamp_min(1e-6)
            images.append(average.clamp(-1, 1))
            weights.append((coverage >= FULLY_KNOWN).to(image.dtype))
        return cls(images, weights)

    def keep(self, estimate: torch.Tensor, index: int) -> torch.Tensor:
        """``estimate`` (a clean-image estimate of stage ``index``) with the known pixels of that stage put in."""
        weight = self.weights[index].to(estimate.dtype)
        return weight * self.images[index].to(estimate.dtype) + (1 - weight) * estimate
