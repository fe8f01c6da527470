"""Output sizes of every generation stage: retargeting and extrapolation beyond the finest scale (SPEC §5).

Two ways to ask for another size:

- ``height_scale`` / ``width_scale`` retarget: every scale's size is multiplied by the factors (truncated to
  int, as the reference does), so a wider canvas gets more content, not stretched content.
- ``height`` / ``width`` ask for an exact output size. The uniform part of an enlargement beyond the training
  size adds extra scales past the finest one (each r times larger, sampled with the finest scale's model, i.e.
  more detail at the same layout); what is left (an aspect change, or an enlargement smaller than r) is
  retargeting. The last stage always has exactly the requested size.

Example:
    >>> from sinddm_pipeline.retargeting import plan_stages
    >>> sizes = [[48, 64], [67, 90], [94, 126], [133, 177], [186, 248]]
    >>> [stage.size for stage in plan_stages(sizes, 1.403, width_scale=2.0)][-1]
    (186, 496)
    >>> [(stage.scale, stage.size) for stage in plan_stages(sizes, 1.403, height=372, width=496)][-3:]
    [(4, (189, 252)), (4, (264, 352)), (4, (372, 496))]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .limits import MIN_SIDE


@dataclass(frozen=True)
class Stage:
    """One stage of coarse-to-fine generation: which model scale runs, at which (height, width)."""

    scale: int
    size: tuple[int, int]


def _check_positive_finite(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")


def plan_stages(
    scale_sizes: list[list[int]],
    scale_factor: float,
    height_scale: float = 1.0,
    width_scale: float = 1.0,
    height: int | None = None,
    width: int | None = None,
) -> list[Stage]:
    """The stages of a generation, coarsest first.

    Args:
        scale_sizes: (height, width) of every trained scale, coarsest first.
        scale_factor: the factor r between scales (for scales beyond the finest).
        height_scale, width_scale: retargeting factors (> 0).
        height, width: the exact output size; one of them alone keeps the other side of the retargeted training
            size. Cannot be combined with a scale factor for the same side.

    Raises:
        ValueError: on non-finite or non-positive values, on a side given both ways, or when the coarsest stage
            would be smaller than 8 px on a side.
    """
    for name, value in (("height_scale", height_scale), ("width_scale", width_scale)):
        _check_positive_finite(name, value)
    for name, value in (("height", height), ("width", width)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive int (pixels) or None, got {value!r}.")
    if height is not None and height_scale != 1.0:
        raise ValueError("Give either height or height_scale, not both.")
    if width is not None and width_scale != 1.0:
        raise ValueError("Give either width or width_scale, not both.")

    num_scales = len(scale_sizes)
    finest_h, finest_w = scale_sizes[-1]

    def size_at(index: int) -> tuple[int, int]:
        if index < num_scales:
            return tuple(scale_sizes[index])
        factor = scale_factor ** (index + 1 - num_scales)
        return int(finest_h * factor), int(finest_w * factor)

    extra = 0
    target = None
    if height is not None or width is not None:
        target = (
            height if height is not None else int(finest_h * height_scale),
            width if width is not None else int(finest_w * width_scale),
        )
        enlargement = min(target[0] / finest_h, target[1] / finest_w)
        if enlargement > 1:
            extra = max(0, math.floor(math.log(enlargement) / math.log(scale_factor) + 1e-9))
        last_h, last_w = size_at(num_scales - 1 + extra)
        height_scale, width_scale = target[0] / last_h, target[1] / last_w

    stages = []
    for index in range(num_scales + extra):
        h, w = size_at(index)
        stages.append(Stage(scale=min(index, num_scales - 1), size=(int(h * height_scale), int(w * width_scale))))
    if target is not None:
        stages[-1] = Stage(scale=stages[-1].scale, size=target)

    coarsest = stages[0].size
    if min(coarsest) < MIN_SIDE:
        raise ValueError(
            f"The requested size is too small: the coarsest scale would be {coarsest[1]}x{coarsest[0]} px "
            f"(width x height), at least {MIN_SIDE} px a side is needed. Use larger height_scale/width_scale "
            f"or height/width (the training image's finest scale is {finest_w}x{finest_h})."
        )
    return stages
