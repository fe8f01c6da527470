"""The components of a training-free SinDDM pipeline for any image: pyramid, scheduler and patch denoiser.

`SinDDMPipeline.from_image` calls this; the settings below are the measured fast defaults on a 2-core CPU
(benchmarks/RESULTS.md, "Training-free sampling"), each one an option of [`SinDDMPatchDenoiser`].

Example:
    >>> from PIL import Image
    >>> from sinddm_pipeline.training_free import training_free_components
    >>> components = training_free_components(Image.radial_gradient("L").convert("RGB").resize((96, 72)))
    >>> sorted(components), components["denoiser"].config.search
    (['denoiser', 'pyramid', 'scheduler'], 'candidates')
"""

from __future__ import annotations

import logging
import os

import torch
from PIL import Image

from .image_inputs import prepare_image
from .image_io import load_training_image
from .modeling_patch_denoiser import SinDDMPatchDenoiser
from .modeling_pyramid import SinDDMPyramid
from .pyramid import DEFAULT_MAX_PIXELS, build_pyramid, capped_size
from .scheduling_sinddm import SinDDMScheduler

logger = logging.getLogger(__name__)

COARSEST_STEPS = 30
"""Denoising steps at the coarsest scale (respaced DDPM), where the layout forms."""
FINE_STEPS = (3, 3, 2, 2)
"""Steps of the scales above it, coarse to fine (the second-order solver keeps large strides accurate); scales past
the fourth take the last count."""
WINDOW_CUTOFF = 1e-6
"""Patch pixels whose window weight is below this fraction of the peak are not computed (see
[`SinDDMPatchDenoiser`]): with the default window, the 3 x 3 pixels around each patch's centre are."""


def fast_defaults(num_scales: int) -> dict:
    """The fast settings of a training-free pipeline with ``num_scales`` scales: candidate search, query stride 2 at
    the coarsest scale and the two finest (every patch at the others) and few steps per scale."""
    fine = [FINE_STEPS[min(i, len(FINE_STEPS) - 1)] for i in range(num_scales - 1)]
    strides = [1] * num_scales
    for index in {0, *range(max(1, num_scales - 2), num_scales)}:
        strides[index] = 2
    return {
        "search": "candidates",
        "query_strides": strides,
        "window_cutoff": WINDOW_CUTOFF,
        "num_inference_steps": [COARSEST_STEPS, *fine],
    }


def load_image(image, name: str = "image") -> Image.Image:
    """A path or any accepted image input (see [`~sinddm_pipeline.image_inputs`]) as an 8-bit RGB PIL image."""
    if isinstance(image, (str, os.PathLike)):
        return load_training_image(image)
    return prepare_image(image, name=name, max_pixels=None)


def training_free_components(image, max_pixels: int = DEFAULT_MAX_PIXELS, **denoiser_options) -> dict:
    """``denoiser``, ``scheduler`` and ``pyramid`` of a training-free pipeline on ``image`` (see
    `SinDDMPipeline.from_image`); ``denoiser_options`` override the fast defaults of `fast_defaults`."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an int >= 1, got {max_pixels!r}.")
    rgb = load_image(image)
    size = capped_size(*rgb.size, max_pixels=max_pixels)
    if size != rgb.size:
        logger.info(
            f"image: {rgb.width}x{rgb.height} px is over {max_pixels:,} pixels; its pyramid's finest scale is "
            f"{size[0]}x{size[1]} (LANCZOS), as for training."
        )
    pyramid = build_pyramid(rgb, max_pixels=max_pixels)
    scheduler = SinDDMScheduler.from_pyramid(pyramid, solver_order=2)
    stored = SinDDMPyramid.from_pyramid(pyramid)
    options = {**fast_defaults(pyramid.num_scales), **denoiser_options}
    with torch.no_grad():
        denoiser = SinDDMPatchDenoiser.from_pyramid(stored, scheduler, **options)
    return {"denoiser": denoiser, "scheduler": scheduler, "pyramid": stored}
