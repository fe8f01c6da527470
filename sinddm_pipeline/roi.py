"""ROI-guided generation (SPEC §6): copy a region of the training image to chosen places of a generated image.

A box is ``(y, x, h, w)`` in pixels: top row, left column, height, width. The source box lies in the training
image (its finest scale), the target boxes in the output image (retargeted outputs included). During generation,
at every stage whose model scale is not the finest, each clean-image estimate (the deblurred one at scales > 0)
gets, inside every target box scaled to that stage, ``0.8 · source patch + 0.2 · estimate``, the source patch
being the source box of the training image at that scale, resized to the box (nearest neighbour). The finest
scale then refines the result without guidance. Boxes are scaled by the pyramid's factor r per scale below the
finest and truncated to int, as the reference does; at coarse scales they are kept at least 1 px and inside the
image.

Example:
    >>> from sinddm_pipeline.roi import check_box, scale_box
    >>> check_box((10, 20, 30, 40), "roi_source_box", height=186, width=248)
    (10, 20, 30, 40)
    >>> scale_box((10, 20, 30, 40), factor=1.403**2, height=94, width=126)  # two scales coarser
    (5, 10, 15, 20)
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]

ROI_WEIGHT = 0.8
"""The weight of the source patch in a target box (the reference's eta)."""


MAX_ROI_BOXES = 64
"""Target boxes of one ROI-guided generation at most (each is pasted at every step of every scale)."""


def check_box(box: Sequence[int], name: str, height: int, width: int) -> Box:
    """``box`` as a tuple of 4 ints ``(y, x, h, w)`` inside an image of ``height`` x ``width`` pixels.

    Raises:
        ValueError: naming ``name`` and the allowed ranges, when ``box`` is not 4 ints, is empty or leaves the image.
    """
    allowed = (
        f"(y, x, h, w) with ints 0 <= y, 1 <= h, y + h <= {height} and 0 <= x, 1 <= w, x + w <= {width} "
        f"(the image is {height} px high and {width} px wide)"
    )
    if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4:
        raise ValueError(f"{name} must be 4 ints {allowed}, got {box!r}.")
    values = []
    for value in box:
        try:
            if isinstance(value, bool):
                raise TypeError
            values.append(operator.index(value))  # ints, numpy and torch integers; not floats
        except TypeError:
            raise ValueError(f"{name} must be 4 ints {allowed}, got {box!r}.") from None
    y, x, h, w = values
    if h < 1 or w < 1:
        raise ValueError(f"{name} is empty: {tuple(values)}; it must be {allowed}.")
    if y < 0 or x < 0 or y + h > height or x + w > width:
        raise ValueError(f"{name} {tuple(values)} leaves the image; it must be {allowed}.")
    return y, x, h, w


def check_roi_arguments(
    source_box: Sequence[int] | None,
    target_boxes: Sequence[Sequence[int]] | None,
    training_size: tuple[int, int],
    output_size: tuple[int, int],
) -> tuple[Box, list[Box]] | None:
    """Validate the ROI arguments of [`SinDDMPipeline`]: ``None`` when both are absent.

    Args:
        source_box: ``roi_source_box`` in the training image (``training_size`` = (height, width) of the finest scale).
        target_boxes: ``roi_target_boxes`` in the output (``output_size`` = (height, width)).

    Raises:
        ValueError: when only one of them is given, there are no target boxes, or a box is invalid.
    """
    if source_box is None and target_boxes is None:
        return None
    if source_box is None:
        raise ValueError("roi_target_boxes needs roi_source_box: the region of the training image to copy there.")
    if target_boxes is None:
        raise ValueError("roi_source_box needs roi_target_boxes: a list of (y, x, h, w) boxes in the output image.")
    source = check_box(source_box, "roi_source_box", *training_size)
    if isinstance(target_boxes, Sequence) and len(target_boxes) > MAX_ROI_BOXES:
        raise ValueError(f"roi_target_boxes has {len(target_boxes):,} boxes; at most {MAX_ROI_BOXES} are allowed.")
    if (
        isinstance(target_boxes, (str, bytes))
        or not isinstance(target_boxes, Sequence)
        or not target_boxes
        or not all(isinstance(box, Sequence) and not isinstance(box, (str, bytes)) for box in target_boxes)
    ):
        raise ValueError(
            f"roi_target_boxes must be a non-empty list of (y, x, h, w) boxes in the output image "
            f"({output_size[0]}x{output_size[1]} px, height x width), got {target_boxes!r:.200}."
        )
    targets = [check_box(box, f"roi_target_boxes[{i}]", *output_size) for i, box in enumerate(target_boxes)]
    return source, targets


def scale_box(box: Box, factor: float, height: int, width: int) -> Box:
    """``box`` divided by ``factor`` (each value truncated to int, as the reference does), then kept at least 1 px
    and inside an image of ``height`` x ``width``."""
    y, x, h, w = (int(value / factor) for value in box)
    y, x = min(max(y, 0), height - 1), min(max(x, 0), width - 1)
    h, w = max(1, min(h, height - y)), max(1, min(w, width - x))
    return y, x, h, w


def paste_patch(estimate: torch.Tensor, patch: torch.Tensor, box: Box, weight: float = ROI_WEIGHT) -> torch.Tensor:
    """``estimate`` with ``weight · patch + (1 - weight) · estimate`` inside ``box``, ``patch`` resized to the box
    (nearest, F.interpolate's default). Returns a new tensor."""
    y, x, h, w = box
    resized = F.interpolate(patch.to(estimate), size=(h, w))
    out = estimate.clone()
    out[:, :, y : y + h, x : x + w] = weight * resized + (1 - weight) * estimate[:, :, y : y + h, x : x + w]
    return out


@dataclass
class ROIGuidance:
    """The ROI edit of one generation: the source patch at every model scale and the target boxes of every stage.

    Args:
        source_patches: the source box of the training image at every model scale, (1, 3, h, w) in [-1, 1].
        stage_boxes: for every generation stage, the target boxes at that stage's size; ``None`` for the stages
            that are not guided (those at the finest model scale).
        weight: the source patch's weight.
    """

    source_patches: list[torch.Tensor]
    stage_boxes: list[list[Box] | None]
    weight: float = ROI_WEIGHT

    @classmethod
    def build(
        cls,
        source_box: Box,
        target_boxes: list[Box],
        scale_images: list[torch.Tensor],
        scale_factor: float,
        stages: list,
    ) -> ROIGuidance:
        """The guidance for generation ``stages`` (their ``scale`` and ``size``), from the training image at every
        scale (``scale_images``, coarsest first) and the pyramid's ``scale_factor`` r.

        The source box is divided by r^(N - 1 - s) for model scale s, a target box by r^(L - 1 - i) for stage i of L
        (the output being the last stage).
        """
        num_scales = len(scale_images)
        patches = []
        for scale, image in enumerate(scale_images):
            height, width = image.shape[-2:]
            y, x, h, w = scale_box(source_box, scale_factor ** (num_scales - 1 - scale), height, width)
            patches.append(image[:, :, y : y + h, x : x + w])
        stage_boxes = []
        for index, stage in enumerate(stages):
            if stage.scale >= num_scales - 1:
                stage_boxes.append(None)
                continue
            factor = scale_factor ** (len(stages) - 1 - index)
            stage_boxes.append([scale_box(box, factor, *stage.size) for box in target_boxes])
        return cls(source_patches=patches, stage_boxes=stage_boxes)

    def guides(self, stage_index: int) -> bool:
        """Whether stage ``stage_index`` is guided."""
        return self.stage_boxes[stage_index] is not None

    def apply(self, estimate: torch.Tensor, stage_index: int, scale: int) -> torch.Tensor:
        """The clean-image ``estimate`` of stage ``stage_index`` (model scale ``scale``) with the source patch blended
        into every target box."""
        for box in self.stage_boxes[stage_index] or []:
            estimate = paste_patch(estimate, self.source_patches[scale], box, self.weight)
        return estimate
