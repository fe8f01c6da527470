"""User images and masks for the image-guided pipelines: what is accepted, what is converted, what is refused.

Accepted for an image or a mask (one image, not a batch):

- a `PIL.Image.Image` of any mode PIL can convert (RGB, RGBA, L, 1, P, I;16, F, ...);
- a `numpy.ndarray` of shape (H, W) or (H, W, C) with C in {1, 3, 4}: uint8 in [0, 255], bool, other integer
  types with values in [0, 255], or floats in [0, 1];
- a `torch.Tensor` of shape (H, W), (C, H, W) or (1, C, H, W) with C in {1, 3, 4}: floats in [0, 1] (what the
  pipelines return with ``output_type="pt"``), uint8 in [0, 255] or bool.

Images become 8-bit RGB (grayscale and RGBA are converted, the alpha dropped, with a log line); an image with
more pixels than the budget (50,000 by default, the training cap) is resized down with LANCZOS, with a log line.
Masks become one channel of floats in [0, 1] (RGB masks via PIL's luminance "L"), resized to the image's size
(with a log line when the mask had another size). Anything else raises a `ValueError` that says what is allowed:
paths and strings (open them with ``PIL.Image.open`` or ``diffusers.utils.load_image`` first), nested lists,
batches, images of 0 or too few pixels, values out of range, an all-zero mask.

Example:
    >>> import numpy as np
    >>> from sinddm_pipeline.image_inputs import prepare_image, prepare_mask
    >>> image = prepare_image(np.zeros((300, 400, 3), dtype=np.uint8))  # 120,000 px > 50,000: resized down
    >>> image.size, image.mode
    ((258, 193), 'RGB')
    >>> mask = np.zeros((300, 400), dtype=bool)
    >>> mask[100:200, 150:250] = True
    >>> prepare_mask(mask, image.size).shape  # (height, width) of the image, values in [0, 1]
    (193, 258)
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from .image_io import to_rgb
from .limits import MIN_SIDE
from .pyramid import DEFAULT_MAX_PIXELS, capped_size

logger = logging.getLogger(__name__)

MAX_PIXELS = DEFAULT_MAX_PIXELS
"""The pixel budget of the reference (SPEC §1): inputs larger than this are resized down."""

ACCEPTED = (
    "a PIL.Image, a numpy array (H, W) or (H, W, C) with C in {1, 3, 4} (uint8 0-255, bool, or float 0-1), or a "
    "torch tensor (H, W), (C, H, W) or (1, C, H, W) (float 0-1, uint8 or bool)"
)


def _array_to_pil(array: np.ndarray, name: str) -> Image.Image:
    """An (H, W) or (H, W, C) numpy array to a PIL image, checking dtype and value range."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " (numpy arrays are read channels-last, (H, W, C): transpose a (C, H, W) array first)"
        raise ValueError(f"{name}: got an array of shape {tuple(array.shape)}{hint}; expected {ACCEPTED}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: got an empty array of shape {tuple(array.shape)}; expected {ACCEPTED}.")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: the array holds nan or inf values; expected floats in [0, 1].")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name}: float values must lie in [0, 1], got [{low:.4g}, {high:.4g}] "
                "(for [-1, 1] data use (x + 1) / 2; for 0-255 data use uint8)."
            )
        array = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.dtype != np.uint8:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > 255:
                raise ValueError(f"{name}: integer values must lie in [0, 255], got [{low}, {high}].")
            array = array.astype(np.uint8)
    else:
        raise ValueError(f"{name}: unsupported array dtype {array.dtype}; expected {ACCEPTED}.")
    return Image.fromarray(np.ascontiguousarray(array))


def to_pil(image: Image.Image | np.ndarray | torch.Tensor, name: str = "image") -> Image.Image:
    """Any accepted image or mask input (see the module docstring) as a PIL image, its mode kept as far as possible.

    Raises:
        ValueError: for anything that is not one image of an accepted type, shape, dtype and value range.
    """
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{name}: the image is empty ({image.width}x{image.height} px).")
        return image
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 4:
            if tensor.shape[0] != 1:
                raise ValueError(
                    f"{name}: got a batch of {tensor.shape[0]} images (shape {tuple(tensor.shape)}); pass one image."
                )
            tensor = tensor[0]
        if tensor.ndim == 3:
            if tensor.shape[0] not in (1, 3, 4):
                raise ValueError(
                    f"{name}: got a tensor of shape {tuple(tensor.shape)}; tensors are read channels-first, "
                    f"(C, H, W) with C in {{1, 3, 4}}. Expected {ACCEPTED}."
                )
            tensor = tensor.permute(1, 2, 0)
        elif tensor.ndim != 2:
            raise ValueError(f"{name}: got a tensor of shape {tuple(tensor.shape)}; expected {ACCEPTED}.")
        if tensor.dtype == torch.bfloat16 or tensor.dtype == torch.float16:
            tensor = tensor.float()
        return _array_to_pil(tensor.numpy(), name)
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, name)
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise ValueError(
            f"{name}: got a path or string ({image!r}), not an image; open it first, e.g. with PIL.Image.open(path) "
            f"or diffusers.utils.load_image(path). Expected {ACCEPTED}."
        )
    if isinstance(image, (list, tuple)):
        raise ValueError(
            f"{name}: got a {type(image).__name__}; pass one image as {ACCEPTED} (wrap nested lists in np.array)."
        )
    raise ValueError(f"{name}: got a {type(image).__name__}; expected {ACCEPTED}.")


def prepare_image(
    image: Image.Image | np.ndarray | torch.Tensor, name: str = "image", max_pixels: int | None = MAX_PIXELS
) -> Image.Image:
    """One accepted image input as an 8-bit RGB PIL image of at most ``max_pixels`` pixels (``None``: no cap).

    Raises:
        ValueError: for inputs that are not an image (see the module docstring) or are smaller than 8 px a side.
    """
    pil = to_rgb(to_pil(image, name), name=name)
    if min(pil.size) < MIN_SIDE:
        raise ValueError(f"{name}: the image is {pil.width}x{pil.height} px; at least {MIN_SIDE} px a side is needed.")
    if max_pixels is not None:
        size = capped_size(pil.width, pil.height, max_pixels)
        if size != pil.size:
            logger.info(
                f"{name}: resized from {pil.width}x{pil.height} to {size[0]}x{size[1]} px (LANCZOS) to stay within "
                f"{max_pixels:,} pixels."
            )
            pil = pil.resize(size, Image.LANCZOS)
    return pil


def _to_gray(mask: Image.Image, name: str) -> Image.Image:
    """One 8-bit channel: L and 1 as they are, colour via luminance, alpha dropped, high bit depth rescaled."""
    if mask.mode == "L":
        return mask
    if mask.mode == "1":
        return mask.convert("L")
    if mask.mode in ("LA", "La"):
        logger.info(f"{name}: dropped the alpha channel of the {mask.mode} mask.")
        return mask.getchannel("L")
    return to_rgb(mask, name=name).convert("L")


def prepare_mask(
    mask: Image.Image | np.ndarray | torch.Tensor,
    size: tuple[int, int],
    name: str = "mask_image",
    original_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """A mask as a (height, width) float64 array in [0, 1] at ``size`` = (width, height) of the image it belongs to.

    White (non-zero) marks the region to work on. A mask of another size than ``original_size`` (the image as the
    user gave it, before the pixel cap; defaults to ``size``) is resized with a log line; every mask is resized
    to ``size`` with LANCZOS like the reference.

    Raises:
        ValueError: for inputs that are not an image, or a mask that is zero everywhere.
    """
    gray = _to_gray(to_pil(mask, name), name)
    original_size = tuple(size if original_size is None else original_size)
    if gray.size != original_size:
        logger.info(
            f"{name}: the mask is {gray.width}x{gray.height} px but the image is {original_size[0]}x"
            f"{original_size[1]} px; resized the mask to the image (LANCZOS)."
        )
    if gray.size != tuple(size):
        gray = gray.resize(tuple(size), Image.LANCZOS)
    array = np.asarray(gray, dtype=np.float64) / 255.0
    if not array.any():
        raise ValueError(f"{name}: the mask is zero everywhere; white (non-zero) pixels must mark the region to use.")
    return array
