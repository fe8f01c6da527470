"""Two plain image statistics of samples against the training image: mean colour and sharpness.

They catch what the feature metrics can hide: a colour cast (samples darker or bluer than the training image) and
blur or noise (a denoiser that averages too much makes samples softer; an under-trained one, noisier).
"""

from __future__ import annotations

import torch

from .common import ImageSet, MetricResult, grayscale, to_batch


@torch.no_grad()
def colour_distance(samples: ImageSet, reference: ImageSet) -> MetricResult:
    """Per sample: the Euclidean distance between its mean RGB colour and the training image's, in [0, 1] units
    (0: the same mean colour; a uniform shift of 0.1 in every channel gives 0.17).

    >>> reference = torch.full((1, 3, 8, 8), 0.5)
    >>> colour_distance(torch.full((2, 3, 8, 8), 0.6), reference).mean  # doctest: +ELLIPSIS
    0.173...
    """
    samples, reference = to_batch(samples).double(), to_batch(reference).double()
    means, target = samples.mean((2, 3)), reference.mean((2, 3))
    values = (means - target).norm(dim=1).tolist()
    return MetricResult("mean colour distance", values, over="sample", higher_is="worse")


def _gradient_energy(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute finite difference (both axes) of each image's luma: (N,)."""
    luma = grayscale(images)
    dx = (luma[:, :, 1:] - luma[:, :, :-1]).abs().mean((1, 2))
    dy = (luma[:, 1:, :] - luma[:, :-1, :]).abs().mean((1, 2))
    return (dx + dy) / 2


@torch.no_grad()
def sharpness(samples: ImageSet, reference: ImageSet) -> MetricResult:
    """Per sample: its mean luma gradient magnitude divided by the training image's (1: as sharp as it; below 1
    softer, above 1 noisier or busier). The training image is resized to the samples' size first by the caller
    (evaluate does), since the ratio depends on scale.

    >>> reference = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> sharpness(torch.cat([reference] * 2), reference).values
    [1.0, 1.0]
    >>> round(sharpness(torch.full((1, 3, 16, 16), 0.5), reference).mean, 3)  # flat: no detail at all
    0.0
    """
    samples, reference = to_batch(samples).double(), to_batch(reference).double()
    target = _gradient_energy(reference)[0]
    if target == 0:
        raise ValueError("The reference image is flat (no gradients): sharpness is undefined.")
    values = (_gradient_energy(samples) / target).tolist()
    return MetricResult("sharpness ratio", values, over="sample", higher_is="closer to 1")
