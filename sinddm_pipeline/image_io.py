"""Reading user images: clear errors for what cannot be used, logged conversions for what can."""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

MAX_FILE_PIXELS = 8192 * 8192
"""Image files larger than this (from their header) are refused before decoding: SinDDM resizes a training image to
50,000 pixels anyway, and decoding a 30000x30000 file would need GBs."""


def _white_level(mode: str, array: np.ndarray) -> float:
    """The value of white in a high bit depth grayscale image: 65535 for 16-bit data, 1.0 for floats in [0, 1],
    255 for 8-bit data stored in a wider type."""
    peak = float(array.max()) if array.size else 0.0
    if mode.startswith("I;16") or peak > 255:
        return 65535.0
    if mode == "F" and peak <= 1.0:
        return 1.0
    return 255.0


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """An 8-bit RGB version of ``image``: grayscale, palette, RGBA (alpha dropped),
    16-bit and float images are converted with a log line saying so."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        array = np.clip(array / _white_level(mode, array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        logger.info(f"{name}: converted {mode} (high bit depth grayscale) to 8-bit RGB.")
        return Image.fromarray(array).convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        logger.info(f"{name}: converted {mode} to RGB (the alpha channel is dropped).")
    else:
        logger.info(f"{name}: converted {mode} to RGB.")
    return image.convert("RGB")


def load_training_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be read, is not an image PIL understands, or is over `MAX_FILE_PIXELS`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No image at {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder; give the path of one image file.")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_FILE_PIXELS:
                raise ValueError(
                    f"{path!r} is {image.width}x{image.height} = {image.width * image.height:,} pixels; at most "
                    f"{MAX_FILE_PIXELS:,} (8192x8192) are read (SinDDM resizes to 50,000 pixels anyway): downscale "
                    "it first."
                )
            image.load()
            return to_rgb(image.copy(), name=os.path.basename(path))
    except Image.DecompressionBombError as error:  # a header past PIL's own bound: refused before decoding too
        raise ValueError(f"{path!r} is too large to read: {error}") from error
    except UnidentifiedImageError as error:
        raise ValueError(f"{path!r} is not an image file PIL can read (PNG, JPEG, TIFF, WebP, ...).") from error
    except OSError as error:
        raise ValueError(f"Cannot read the image {path!r}: {error}") from error
