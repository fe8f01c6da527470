"""Bounds on one generation call, checked before anything is allocated: a bad size or batch is a ValueError that
names the argument and the allowed range, never a multi-GB allocation or a hang.

Example:
    >>> from sinddm_pipeline.limits import check_output_size
    >>> check_output_size(4, 186, 248)  # 4 samples of 248x186: fine
    >>> check_output_size(1, 100_000, 100_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: The output would be 100000x100000 = 10,000,000,000 pixels per image; at most 16,777,216 ...
"""

from __future__ import annotations

import torch

MAX_OUTPUT_PIXELS = 4096 * 4096
"""Pixels of one output image at most (16.8 M: a 4096x4096 sample; ~1.3 GB of fp32 activations per denoiser call of
the dim-64 model)."""
MAX_CALL_PIXELS = 64 * 1024 * 1024
"""Pixels of all the images of one call at most (64 samples of 1024x1024, or 16 of 2048x2048)."""
MAX_MODEL_DIM = 1024
"""`SinDDMModel`'s widest channel count at most (the paper's is 160; 1024 is ~45 M parameters)."""
MAX_TRAIN_TIMESTEPS = 10_000
"""The scheduler's diffusion steps at most (SinDDM uses 100)."""
MAX_SCALES = 32
"""Pyramid scales at most (a 50,000-pixel image has 5-9)."""
MIN_SIDE = 8
"""The smallest side, in pixels, of an input image and of any generated scale."""


def check_count(name: str, value, low: int, high: int) -> None:
    """``value`` must be an int (not a bool) in [low, high]: a config or argument read from a file or a user."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high:,}], got {value!r}.")


def check_scale_sizes(scale_sizes: list[list[int]]) -> None:
    """At most `MAX_SCALES` scales, each at most `MAX_OUTPUT_PIXELS` (a config from a file is not trusted)."""
    if len(scale_sizes) > MAX_SCALES:
        raise ValueError(f"scale_sizes has {len(scale_sizes)} scales; at most {MAX_SCALES} are allowed.")
    for height, width in scale_sizes:
        if height * width > MAX_OUTPUT_PIXELS:
            raise ValueError(
                f"scale_sizes has a {width}x{height} scale; at most {MAX_OUTPUT_PIXELS:,} pixels (4096x4096) per scale."
            )


def check_output_size(batch_size: int, height: int, width: int) -> None:
    """Refuse an output of ``batch_size`` images of ``height`` x ``width`` beyond `MAX_OUTPUT_PIXELS` per image or
    `MAX_CALL_PIXELS` per call."""
    pixels = height * width
    if pixels > MAX_OUTPUT_PIXELS:
        raise ValueError(
            f"The output would be {width}x{height} = {pixels:,} pixels per image; at most {MAX_OUTPUT_PIXELS:,} "
            "(4096x4096) are allowed: lower height / width or height_scale / width_scale."
        )
    if batch_size * pixels > MAX_CALL_PIXELS:
        raise ValueError(
            f"batch_size {batch_size} x {width}x{height} px = {batch_size * pixels:,} pixels in one call; at most "
            f"{MAX_CALL_PIXELS:,} are allowed: batch_size at most {max(MAX_CALL_PIXELS // pixels, 1)} at this size "
            "(call again for more images)."
        )


def check_generator(generator, batch_size: int) -> None:
    """``generator`` must be None, a `torch.Generator`, or a list of ``batch_size`` of them (one per image)."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch_size:
            raise ValueError(
                f"generator is a list of {len(generator)} generators; it must have one per image (batch_size "
                f"{batch_size})."
            )
        if all(isinstance(item, torch.Generator) for item in generator):
            return
    raise ValueError(
        "generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), a list of batch_size of them, "
        f"or None; got {type(generator).__name__} {generator!r:.60}."
    )
