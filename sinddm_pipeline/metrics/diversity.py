"""Pixel diversity (SinGAN, Shaham et al. 2019): how much the samples differ from one another, pixel by pixel."""

from __future__ import annotations

import torch

from .common import ImageSet, MetricResult, grayscale, to_batch


@torch.no_grad()
def pixel_diversity(samples: ImageSet, reference: ImageSet) -> MetricResult:
    """SinGAN's diversity: the per-pixel standard deviation over the samples' grayscale images, averaged over
    pixels, divided by the standard deviation of the training image's grayscale pixels.

    0 when all samples are the same image; it grows as samples differ. Standard deviations are population ones
    (ddof 0) and images are in [0, 1] with ITU-R 601 luma, so the value does not depend on the image format.

    Args:
        samples: at least two generated images of one size (PIL list, NHWC array or NCHW tensor in [0, 1]).
        reference: the training image (any size).

    Returns:
        A set-level [`MetricResult`] (one value, higher is more diverse).

    >>> import torch
    >>> reference = torch.zeros(1, 3, 8, 8)
    >>> reference[..., 4:] = 1.0  # half black, half white: grayscale std 0.5
    >>> pixel_diversity(torch.cat([reference] * 4), reference).mean  # copies: no diversity
    0.0
    >>> pixel_diversity(torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)]), reference).mean
    1.0
    """
    samples = grayscale(to_batch(samples).double())
    reference = grayscale(to_batch(reference).double())
    if samples.shape[0] < 2:
        raise ValueError(f"pixel_diversity needs at least 2 samples, got {samples.shape[0]}.")
    reference_std = reference.std(unbiased=False).item()
    if reference_std == 0:
        raise ValueError("The reference image is flat (zero standard deviation): pixel diversity is undefined.")
    per_pixel_std = samples.std(dim=0, unbiased=False).mean().item()
    return MetricResult("pixel diversity", [per_pixel_std / reference_std], over="set", higher_is="more diverse")
