"""A patch-distribution distance: sliced Wasserstein between the sets of 7x7 patches of a sample and of the
training image, at a few scales. It asks what SinGAN-style models are trained for (the same patches, anywhere)
and needs no pretrained network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .common import ImageSet, MetricResult, to_batch


def image_patches(image: torch.Tensor, patch_size: int = 7) -> torch.Tensor:
    """All ``patch_size`` x ``patch_size`` patches (stride 1) of a (3, H, W) image as (count, 3 * size * size) rows.

    >>> image_patches(torch.zeros(3, 10, 12)).shape
    torch.Size([24, 147])
    """
    return F.unfold(image[None], patch_size).squeeze(0).T


def _rescale(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1:
        return image
    size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _sorted_projections(points: torch.Tensor, directions: torch.Tensor) -> np.ndarray:
    """(directions, points) projections, each row sorted (numpy's sort is ~20x faster than torch's on CPU)."""
    return np.sort((directions.T @ points.T).cpu().numpy(), axis=1)


def _quantiles(sorted_values: np.ndarray, count: int) -> np.ndarray:
    """Sorted (P, n) rows resampled to ``count`` columns by linear interpolation of the empirical quantiles."""
    n = sorted_values.shape[1]
    if n == count:
        return sorted_values
    position = np.clip((np.arange(count) + 0.5) * n / count - 0.5, 0, n - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    weight = (position - low).astype(sorted_values.dtype)
    return sorted_values[:, low] * (1 - weight) + sorted_values[:, high] * weight


def _distance(sorted_a: np.ndarray, sorted_b: np.ndarray) -> float:
    count = max(sorted_a.shape[1], sorted_b.shape[1])
    difference = _quantiles(sorted_a, count) - _quantiles(sorted_b, count)
    return float(np.sqrt(np.mean(np.square(difference, dtype=np.float64))))


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """The sliced 2-Wasserstein distance between two point sets (rows of ``a`` and ``b``) along the unit columns
    of ``directions``: the root mean square difference of their sorted projections (empirical quantiles where
    the sets differ in size), over all directions.

    >>> directions = torch.eye(2)
    >>> sliced_wasserstein(torch.zeros(5, 2), torch.full((3, 2), 2.0), directions)
    2.0
    """
    return _distance(_sorted_projections(a, directions), _sorted_projections(b, directions))


def random_directions(dim: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` random unit vectors in R^dim as columns, the same for a given seed on every machine."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(dim, count, generator=generator, dtype=torch.float64)
    return (directions / directions.norm(dim=0, keepdim=True)).float()


@torch.no_grad()
def patch_swd(
    samples: ImageSet,
    reference: ImageSet,
    patch_size: int = 7,
    scales: tuple[float, ...] = (1.0, 0.5, 0.25),
    num_projections: int = 128,
    seed: int = 0,
) -> MetricResult:
    """Sliced Wasserstein distance between the ``patch_size`` patches of every sample and of the training image,
    averaged over ``scales`` (each image resized by that factor, bilinear with antialiasing).

    0 when a sample has exactly the training image's patches (in any arrangement). Deterministic: the
    projection directions come from ``seed``. Scales where an image is smaller than a patch are skipped.

    Args:
        samples: generated images in [0, 1] (any size).
        reference: the training image.
        patch_size, scales, num_projections, seed: the patch size, the image scales, the number of random
            directions and their seed.

    Returns:
        A [`MetricResult`] with one value per sample (lower is closer to the training image's patches).

    >>> image = torch.rand(1, 3, 32, 40)
    >>> patch_swd(image, image).mean
    0.0
    >>> patch_swd(torch.zeros(1, 3, 32, 40), image).mean > 0.2
    True
    """
    directions = random_directions(3 * patch_size * patch_size, num_projections, seed)

    def projections(image: torch.Tensor) -> dict[float, np.ndarray]:
        rescaled = {scale: _rescale(image, scale) for scale in scales}
        return {
            scale: _sorted_projections(image_patches(x, patch_size), directions)
            for scale, x in rescaled.items()
            if min(x.shape[-2:]) >= patch_size
        }

    reference = to_batch(reference).cpu()
    if reference.shape[0] != 1:
        raise ValueError(f"Expected one reference image, got {reference.shape[0]}.")
    reference = projections(reference[0])
    values = []
    for sample in to_batch(samples).cpu():
        distances = [_distance(sorted_, reference[s]) for s, sorted_ in projections(sample).items() if s in reference]
        if not distances:
            raise ValueError(f"At every scale, the sample or the reference is smaller than a {patch_size}px patch.")
        values.append(sum(distances) / len(distances))
    return MetricResult(f"patch SWD ({patch_size}x{patch_size})", values, over="sample", higher_is="worse")
