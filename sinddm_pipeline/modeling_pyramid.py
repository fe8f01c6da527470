"""SinDDMPyramid: the training image's pyramid as a pipeline component, saved as safetensors.

Image-guided tasks (style transfer, harmonization, ROI generation, text edits) need the training image at every
scale. Keeping it as a component of the pipeline means it is saved, loaded, pushed to the Hub and moved between
devices with the weights, with no pickle and no side files.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image

from .pyramid import Pyramid


class SinDDMPyramid(ModelMixin, ConfigMixin):
    r"""The training image at every scale of the pyramid, coarsest first, stored as uint8 (height, width, 3) buffers.

    Args:
        scale_sizes (`list[list[int]]`): (height, width) of every scale, coarsest first.

    Example:
        ```py
        >>> from PIL import Image
        >>> from sinddm_pipeline import SinDDMPyramid
        >>> from sinddm_pipeline.pyramid import build_pyramid
        >>> stored = SinDDMPyramid.from_pyramid(build_pyramid(Image.new("RGB", (248, 186), "red")))
        >>> stored.num_scales, stored.image(0).shape
        (5, torch.Size([1, 3, 48, 64]))
        ```
    """

    @register_to_config
    def __init__(self, scale_sizes: list[list[int]] | None = None):
        super().__init__()
        if not scale_sizes:
            raise ValueError("scale_sizes must list the (height, width) of at least one scale.")
        for index, (height, width) in enumerate(scale_sizes):
            self.register_buffer(f"scale_{index}", torch.zeros(int(height), int(width), 3, dtype=torch.uint8))

    @classmethod
    def from_pyramid(cls, pyramid: Pyramid) -> SinDDMPyramid:
        """Store the images of a [`~sinddm_pipeline.pyramid.Pyramid`]."""
        stored = cls(scale_sizes=[[height, width] for width, height in pyramid.sizes])
        for index, image in enumerate(pyramid.images):
            getattr(stored, f"scale_{index}").copy_(torch.from_numpy(np.array(image.convert("RGB"))))
        return stored

    @property
    def num_scales(self) -> int:
        return len(self.config.scale_sizes)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_scales:
            raise ValueError(f"scale index must be in [0, {self.num_scales - 1}], got {index}.")

    def pil(self, index: int) -> Image.Image:
        """Scale ``index`` as an RGB PIL image."""
        self._check_index(index)
        return Image.fromarray(getattr(self, f"scale_{index}").cpu().numpy())

    def blurry_pil(self, index: int) -> Image.Image:
        """Scale ``index - 1`` resized up to scale ``index`` (PIL BILINEAR), the blurry image of training."""
        self._check_index(index)
        if index == 0:
            raise ValueError("Scale 0 has no blurry version.")
        return self.pil(index - 1).resize(self.pil(index).size, Image.BILINEAR)

    def image(self, index: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Scale ``index`` as a (1, 3, height, width) tensor in [-1, 1] on this component's device."""
        self._check_index(index)
        data = getattr(self, f"scale_{index}")
        return (data.permute(2, 0, 1)[None].to(dtype) / 255.0) * 2 - 1
