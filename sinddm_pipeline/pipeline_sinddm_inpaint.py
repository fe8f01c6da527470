"""SinDDMInpaintPipeline: inpainting (fill a masked hole) and outpainting (extend the canvas) with a SinDDM model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from .image_inputs import MAX_PIXELS, prepare_image
from .known_pixels import FEATHER_RADIUS, KnownPixels, blend, check_feather_radius, masked_input
from .limits import check_count, check_output_size
from .pipeline_sinddm_base import SinDDMPipelineBase, StepGuidance
from .pyramid import pil_to_tensor
from .retargeting import Stage

MAX_RESAMPLE_STEPS = 20
"""The most RePaint resamplings per step (RePaint itself uses 10)."""
MARGINS = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class Canvas:
    """What an inpainting or outpainting call works on, at the output's size (made by `inpainting_canvas` or
    `outpainting_canvas`).

    Attributes:
        image: (1, 3, H, W) in [-1, 1]: the input (outpainting: placed on the larger canvas, zero in the margins).
        known: (H, W) bool, the pixels kept in every clean-image estimate.
        weight: (H, W) float, the final blend's weight of the generated image (1 in the hole, 0 where the input is
            kept exactly: beyond the dilated hole, or the whole input block of outpainting).
    """

    image: torch.Tensor
    known: torch.Tensor
    weight: torch.Tensor


def check_margins(top: int, bottom: int, left: int, right: int, width: int, height: int) -> None:
    """Margins must be ints >= 0, top and bottom at most the image's ``height``, left and right at most its
    ``width``.

    >>> check_margins(0, 0, 40, 40, 120, 80)
    >>> check_margins(-1, 0, 0, 0, 120, 80)
    Traceback (most recent call last):
        ...
    ValueError: top must be an int in [0, 80], got -1.
    """
    for name, value, side in zip(MARGINS, (top, bottom, left, right), (height, height, width, width), strict=True):
        check_count(name, value, 0, side)


def inpainting_canvas(image, mask_image, feather_radius: int = FEATHER_RADIUS) -> Canvas:
    """The canvas of inpainting: ``image`` capped at 50,000 px, the hole (``mask_image`` >= 0.5, resized to the
    image) dilated by ``feather_radius`` regenerated, every pixel beyond it kept.

    Raises:
        ValueError: for inputs that are not images, an empty or full mask, or a dilated hole that leaves nothing.

    >>> import numpy as np
    >>> mask = np.zeros((60, 80))
    >>> mask[20:40, 30:50] = 1
    >>> canvas = inpainting_canvas(np.zeros((60, 80, 3), dtype=np.uint8), mask, feather_radius=4)
    >>> tuple(canvas.image.shape), int((~canvas.known).sum())  # the 20x20 hole and < 4 px around it
    ((1, 3, 60, 80), 672)
    """
    rgb, weight = masked_input(image, mask_image, feather_radius, "hole")
    known = weight == 0
    return Canvas(pil_to_tensor(rgb), torch.from_numpy(known), torch.from_numpy(weight))


def outpainting_canvas(image, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0) -> Canvas:
    """The canvas of outpainting: ``image`` capped at 50,000 px (its margins scaled with it) placed at (top, left)
    of a canvas larger by the margins, which are generated; the image is kept.

    Raises:
        ValueError: for an input that is not an image, or margins out of range (`check_margins`).

    >>> import numpy as np
    >>> canvas = outpainting_canvas(np.zeros((60, 80, 3), dtype=np.uint8), left=20, bottom=10)
    >>> tuple(canvas.image.shape), int(canvas.known.sum()) == 60 * 80, bool(canvas.known[0, 20])
    ((1, 3, 70, 100), True, True)
    """
    rgb = prepare_image(image, name="image", max_pixels=None)
    check_margins(top, bottom, left, right, rgb.width, rgb.height)
    capped = prepare_image(rgb, name="image", max_pixels=MAX_PIXELS)
    if capped.size != rgb.size:
        factor = capped.width / rgb.width
        top, bottom, left, right = (round(margin * factor) for margin in (top, bottom, left, right))
        if not any((top, bottom, left, right)):
            raise ValueError(
                f"The margins are 0 once scaled with the image (resized to {capped.width}x{capped.height} px, at "
                f"most {MAX_PIXELS:,}); give larger margins."
            )
    height, width = capped.height + top + bottom, capped.width + left + right
    canvas = torch.zeros(1, 3, height, width)
    canvas[..., top : top + capped.height, left : left + capped.width] = pil_to_tensor(capped)
    known = torch.zeros(height, width, dtype=torch.bool)
    known[top : top + capped.height, left : left + capped.width] = True
    return Canvas(canvas, known, (~known).double())


class SinDDMInpaintPipeline(SinDDMPipelineBase):
    r"""Inpainting and outpainting with the components of [`SinDDMPipeline`] (trained or training-free).

    Inpainting fills a hole (``mask_image`` white) with content like the training image's, consistent with the
    rest of the image; outpainting extends the canvas by margins (``top``, ``bottom``, ``left``, ``right``) and
    fills them. Both generate every stage at the output's size, coarse to fine, from pure noise, and at every step
    of every stage the clean-image estimate gets the known pixels (the input, resized to that stage) put in, so the
    generated region grows consistent with them at every scale; at the last step the known pixels come out as they
    are. Optionally, RePaint-style resampling (``resample_steps``) at the coarsest scale harmonises the two further.

    Components: those of [`SinDDMPipeline`] (``denoiser``, trained or training-free; ``scheduler``; ``pyramid``).

    Example:
        ```py
        >>> import torch
        >>> from skimage import data
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.pipeline_sinddm_inpaint import SinDDMInpaintPipeline
        >>> training_free = SinDDMPipeline.from_image(data.coffee(), max_pixels=6000)  # small, to be quick
        >>> pipe = SinDDMInpaintPipeline.from_pipe(training_free)
        >>> pipe.set_progress_bar_config(disable=True)
        >>> coffee = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # 94x63
        >>> pipe(coffee, right=30, generator=torch.Generator().manual_seed(0)).images[0].size  # 30 px wider
        (124, 63)
        ```
    """

    def check_inputs(
        self,
        mask_image,
        margins: tuple[int, int, int, int],
        feather_radius: int,
        resample_steps: int,
        batch_size: int,
        output_type: str,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> None:
        """The argument checks of `__call__` that need no image (margins are checked against the image later)."""
        self.check_call_inputs(batch_size, output_type, generator)
        check_feather_radius(feather_radius)
        check_count("resample_steps", resample_steps, 0, MAX_RESAMPLE_STEPS)
        for name, value in zip(MARGINS, margins, strict=True):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0 (pixels of margin), got {value!r}.")
        outpaint = any(margins)
        if (mask_image is None) == (not outpaint):
            raise ValueError(
                "Give mask_image (inpainting: white marks the hole) or margins top/bottom/left/right > 0 "
                "(outpainting), " + ("not both." if outpaint else "got neither.")
            )

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray | torch.Tensor,
        mask_image: Image.Image | np.ndarray | torch.Tensor | None = None,
        top: int = 0,
        bottom: int = 0,
        left: int = 0,
        right: int = 0,
        feather_radius: int = FEATHER_RADIUS,
        resample_steps: int = 0,
        num_inference_steps: int | Sequence[int] | None = None,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Inpaint the hole of ``image`` marked by ``mask_image``, or outpaint ``image`` by the margins.

        Args:
            image: the image: a PIL image, a numpy array (H, W, C) uint8 or float in [0, 1], or a tensor (C, H, W) /
                (1, C, H, W) in [0, 1]; see [`~sinddm_pipeline.image_inputs`]. Images over 50,000 px are resized
                down (LANCZOS), as for training; the output has the (resized) image's size, plus the margins.
            mask_image (*optional*): inpainting: white (>= 0.5 once in [0, 1]) marks the hole, any size (resized to
                the image) and type as ``image``; neither empty nor the whole image.
            top, bottom, left, right (`int`, defaults to 0): outpainting: the margins in pixels to add on each
                side, ints >= 0, not all 0; top and bottom at most the image's height, left and right at most its
                width (scaled with the image when it is resized down). The image is kept exactly, as a block of the
                output. Give ``mask_image`` or margins, not both.
            feather_radius (`int`, defaults to 8): inpainting: the hole dilated by this many pixels is regenerated,
                and the output is w · generated + (1 - w) · image with w 1 on the hole, falling linearly to 0 at
                this distance from it (`~sinddm_pipeline.known_pixels.feathered_weight`): pixels farther from the
                hole are the image's exactly. An int in [0, 64].
            resample_steps (`int`, defaults to 0): RePaint's resampling, off by default: after every step of the
                coarsest scale but its last (its plain DDPM steps, where the fill's layout forms) the result is
                noised back to the step's timestep and the step is redone, this many times (an int in [0, 20]);
                each costs one more denoiser call at the coarsest scale. The finer scales' deterministic steps are
                not resampled (see `SinDDMPipelineBase.denoise_stage`).
            num_inference_steps (`int` or list of `int`, *optional*): at most this many denoising steps per scale,
                as in [`SinDDMPipeline`] (default: every step for a trained model, the fast steps after
                ``enable_fast_sampling``, a training-free denoiser's own).
            batch_size (`int`, defaults to 1): how many results from the same input.
            generator (`torch.Generator` or a list of them): makes the result deterministic.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (NHWC in [0, 1]) or `"pt"` (NCHW in [0, 1]).
            return_dict (`bool`, defaults to `True`): return an [`~pipelines.ImagePipelineOutput`], else a tuple.
            callback_on_step_end (`Callable`, *optional*): diffusers' step callback, called after every denoising
                step as ``callback_on_step_end(pipe, step_index, timestep, {"sample": sample})``; a returned
                ``{"sample": ...}`` replaces the sample.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): the names passed (default ``["sample"]``).

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the results.

        Raises:
            ValueError: for a mask that is empty or the whole image, margins < 0, too large or all 0, both a mask
                and margins (or neither), and any other argument out of its range.

        Example:
            ```py
            >>> import torch
            >>> from PIL import Image
            >>> from sinddm_pipeline.pipeline_sinddm_inpaint import SinDDMInpaintPipeline
            >>> pipe = SinDDMInpaintPipeline.from_pretrained("models/hubble-sinddm")
            >>> pipe.set_progress_bar_config(disable=True)
            >>> choice = pipe.enable_fast_sampling()  # optional: ~10x faster
            >>> image = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # the training image, 239x208
            >>> mask = Image.new("L", image.size)
            >>> mask.paste(255, (80, 60, 160, 140))  # the hole: an 80x80 square
            >>> filled = pipe(image, mask_image=mask, generator=torch.Generator().manual_seed(0)).images[0]
            >>> filled.size
            (239, 208)
            >>> wider = pipe(image, left=60, right=60, generator=torch.Generator().manual_seed(0)).images[0]
            >>> wider.size, wider.crop((60, 0, 299, 208)).tobytes() == image.tobytes()  # the image kept as it is
            ((359, 208), True)
            ```
        """
        margins = (top, bottom, left, right)
        self.check_inputs(mask_image, margins, feather_radius, resample_steps, batch_size, output_type, generator)
        steps = self.inference_steps(num_inference_steps)
        if mask_image is not None:
            canvas = inpainting_canvas(image, mask_image, feather_radius)
        else:
            canvas = outpainting_canvas(image, *margins)
        height, width = canvas.known.shape
        check_output_size(batch_size, height, width)
        stages = self.plan(height=height, width=width)

        device, dtype = self._execution_device, self.sample_dtype
        original = canvas.image.to(device=device, dtype=dtype)
        known = KnownPixels.build(original, canvas.known.to(device), stages)

        def guidance(index: int, stage: Stage) -> StepGuidance:
            return self.estimate_guidance(lambda estimate, t: known.keep(estimate, index), stage.scale)

        sample = self.start_sample((batch_size, 3, *stages[0].size), generator)
        sample = self.generate_stages(
            sample, stages, steps, callback_on_step_end, callback_on_step_end_tensor_inputs, generator=generator,
            guidance=guidance, resample_steps=resample_steps
        )

        if tuple(sample.shape[-2:]) == (height, width):  # not so when a callback interrupted the call
            sample = blend(sample, original, canvas.weight.to(device)[None, None])  # the kept pixels exactly
        return self.image_output(sample, output_type, return_dict)
