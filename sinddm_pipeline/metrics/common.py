"""What every metric shares: image sets as [0, 1] tensors and a result with its mean, spread and raw values."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

ImageSet = torch.Tensor | np.ndarray | Image.Image | Sequence[Image.Image] | str | os.PathLike


def to_batch(images: ImageSet, device: torch.device | str | None = None) -> torch.Tensor:
    """Images as a float32 (N, 3, height, width) tensor in [0, 1].

    Accepts what [`SinDDMPipeline`] returns: a list of PIL images (``output_type="pil"``), an (N, H, W, 3) array
    in [0, 1] (``"np"``) or an (N, 3, H, W) tensor in [0, 1] (``"pt"``); also one PIL image, one (H, W, 3) array
    or one (3, H, W) tensor, or the path of an image file. uint8 arrays and tensors are divided by 255.

    >>> to_batch(Image.new("RGB", (5, 4), "white")).shape
    torch.Size([1, 3, 4, 5])
    >>> to_batch(np.zeros((2, 4, 5, 3), dtype=np.uint8)).shape
    torch.Size([2, 3, 4, 5])
    """
    if isinstance(images, (str, os.PathLike)):
        from ..image_io import load_training_image

        images = load_training_image(images)
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Expected at least one image, got an empty list.")
        if not all(isinstance(image, Image.Image) for image in images):
            raise TypeError("A list of images must hold PIL images only.")
        sizes = {image.size for image in images}
        if len(sizes) > 1:
            raise ValueError(f"All images of a set must have the same size, got {sorted(sizes)}.")
        images = np.stack([np.asarray(image.convert("RGB")) for image in images])
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Expected (N, H, W, 3) arrays, got shape {images.shape}.")
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"Cannot read images from a {type(images).__name__}.")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"Expected (N, 3, H, W) tensors, got shape {tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise ValueError("Expected at least one image, got an empty batch.")
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    return (images.to(device=device, dtype=torch.float32) / scale).contiguous()


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB to (N, H, W) luma with the ITU-R 601 weights PIL's ``convert("L")`` uses.

    >>> grayscale(torch.ones(1, 3, 2, 2)).shape
    torch.Size([1, 2, 2])
    """
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return torch.einsum("nchw,c->nhw", images, weights)


@dataclass
class MetricResult:
    """One metric over a set of samples.

    Attributes:
        name: the metric's display name (e.g. ``"SIFID-VGG"``).
        values: one value per sample, per pair of samples, or a single one for a set-level metric.
        over: what a value is measured on: ``"sample"``, ``"pair"`` or ``"set"``.
        higher_is: ``"better"`` for diversity metrics, ``"worse"`` for distances.

    >>> result = MetricResult("demo", [1.0, 3.0], over="sample")
    >>> result.mean, result.std, result.summary()
    (2.0, 1.0, '2.0000 ± 1.0000')
    >>> MetricResult("big", [4000.0, 4100.0]).summary()
    '4050.0 ± 50.0'
    """

    name: str
    values: list[float]
    over: str = "sample"
    higher_is: str = "worse"
    details: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float | None:
        """The population standard deviation of the values; ``None`` for a single set-level value."""
        return None if len(self.values) < 2 else float(np.std(self.values))

    def summary(self) -> str:
        """``mean ± std`` (the mean alone for a set-level value), 4 decimals below 100, 1 above."""
        digits = 1 if abs(self.mean) >= 100 else 4
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict:
        """A JSON-ready dict: name, mean, std, n, over, higher_is, values and details."""
        values = [float(value) for value in self.values]
        return {
            "name": self.name,
            "mean": self.mean,
            "std": self.std,
            "n": len(values),
            "over": self.over,
            "higher_is": self.higher_is,
            "values": [value if math.isfinite(value) else None for value in values],
            **({"details": self.details} if self.details else {}),
        }
