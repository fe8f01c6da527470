"""Seam roughness: how visible the wrap-around seam of an image is when it is tiled (for tileable output)."""

from __future__ import annotations

import torch

from .common import ImageSet, MetricResult, to_batch


@torch.no_grad()
def seam_ratio(images: ImageSet) -> MetricResult:
    """The gradient energy across each image's wrap-around seams over that between neighbouring pixels inside it.

    Tiled, an image's last column meets its first and its last row its first. The seam energy is the mean of
    |x[..., 0] - x[..., -1]|^2 (columns) plus that of |x[..., 0, :] - x[..., -1, :]|^2 (rows); the interior
    energy is the mean squared difference of all neighbouring columns plus that of all neighbouring rows inside
    the image. A ratio near 1 (or below) means the seam is no rougher than the image itself: the tiles join
    without seams. An image whose opposite borders are unrelated, but whose neighbouring pixels are alike (a natural
    image), has a ratio well above 1. (White noise has 1: its neighbours are unrelated too.)

    Args:
        images: images in [0, 1] (PIL list, NHWC array or NCHW tensor; see [`to_batch`]), at least 2 px a side.

    Returns:
        A [`MetricResult`] with one ratio per image (lower is more seamless).

    Example:
        >>> import torch
        >>> ramp = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)  # 0 to 1 left to right: tiled, a sharp seam
        >>> round(seam_ratio(ramp).mean)
        961
        >>> round(seam_ratio(torch.cat([ramp, ramp.flip(-1)], dim=-1)).mean, 2)  # there and back: it tiles
        0.0
    """
    batch = to_batch(images).double()
    if min(batch.shape[-2:]) < 2:
        raise ValueError(f"seam_ratio needs images of at least 2x2 px, got {tuple(batch.shape[-2:])}.")

    def energy(difference: torch.Tensor) -> torch.Tensor:
        return difference.square().flatten(1).mean(1)

    seam = energy(batch[..., 0] - batch[..., -1]) + energy(batch[..., 0, :] - batch[..., -1, :])
    interior = energy(batch[..., 1:] - batch[..., :-1]) + energy(batch[..., 1:, :] - batch[..., :-1, :])
    ratios = (seam / interior.clamp(min=1e-12)).tolist()
    return MetricResult("seam ratio", ratios, over="sample", higher_is="worse")
