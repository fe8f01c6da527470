"""SinDDMPaintPipeline: paint-to-image and editing with a SinDDM model, SinGAN's two injection tasks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from .image_inputs import prepare_image
from .known_pixels import (
    FEATHER_RADIUS,
    KnownPixels,
    blend,
    check_feather_radius,
    masked_input,
    resize,
)
from .limits import check_count, check_output_size
from .pipeline_sinddm_base import SinDDMPipelineBase, StepGuidance
from .pyramid import pil_to_tensor
from .retargeting import Stage

START_SCALE = 1
"""Default injection scale: the second-coarsest, as SinGAN's paint-to-image (``--paint_start_scale``) suggests."""


def paint_size(painting_size: tuple[int, int], model_size: Sequence[int]) -> tuple[int, int]:
    """The output (height, width) of paint-to-image: the painting's aspect ratio with as many pixels as the model's
    finest scale, ``model_size`` = (height, width).

    >>> paint_size((400, 200), (208, 239))  # a 2:1 painting, a 239x208 model
    (158, 315)
    """
    width, height = painting_size
    model_height, model_width = model_size
    out_height = math.sqrt(model_height * model_width * height / width)
    return max(1, round(out_height)), max(1, round(out_height * width / height))


class SinDDMPaintPipeline(SinDDMPipelineBase):
    r"""Paint-to-image and editing with the components of [`SinDDMPipeline`] (trained or training-free), as in
    SinGAN: an image is injected at a coarse scale and the finer scales are generated from it.

    - Paint-to-image (no ``mask_image``): a rough painting or clip-art in the training image's colours becomes a
      realistic image with its layout.
    - Editing (with ``mask_image``): the user pasted or moved content in an image and marks the edited region; the
      region is regenerated so that it blends in, and every pixel farther than ``feather_radius`` from it is kept.

    The input, resized down to the stage before ``start_scale`` and up-sampled again, is the blurry image of the
    stage ``start_scale`` (exactly what coarse-to-fine generation hands that stage), noised to the stage's start
    timestep t_i; that stage and the finer ones are then generated. Editing also puts the kept pixels into every
    clean-image estimate (see [`~sinddm_pipeline.known_pixels.KnownPixels`]), so the region is regenerated
    consistently with them.

    Components: those of [`SinDDMPipeline`] (``denoiser``, trained or training-free; ``scheduler``; ``pyramid``).

    Example:
        ```py
        >>> import torch
        >>> from PIL import Image
        >>> from skimage import data
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.pipeline_sinddm_paint import SinDDMPaintPipeline
        >>> training_free = SinDDMPipeline.from_image(data.coffee(), max_pixels=6000)  # small, to be quick
        >>> pipe = SinDDMPaintPipeline.from_pipe(training_free)
        >>> pipe.set_progress_bar_config(disable=True)
        >>> coffee = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # 94x63
        >>> painting = coffee.quantize(6).convert("RGB").resize((24, 16), Image.BOX)  # in the image's colours
        >>> pipe(painting, generator=torch.Generator().manual_seed(0)).images[0].size
        (94, 63)
        ```
    """

    def check_inputs(
        self,
        start_scale: int,
        feather_radius: int,
        batch_size: int,
        output_type: str,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> None:
        """The argument checks of `__call__` that need no image."""
        self.check_call_inputs(batch_size, output_type, generator)
        check_feather_radius(feather_radius)
        last = self.scheduler.num_scales - 1
        if last < 1:
            raise ValueError("This model has a single scale: paint-to-image and editing need at least two.")
        try:
            check_count("start_scale", start_scale, 1, last)
        except ValueError:
            raise ValueError(
                f"start_scale must be an int in [1, {last}] (1: the second-coarsest scale, the most change; "
                f"{last}: the finest, the least), got {start_scale!r}."
            ) from None

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray | torch.Tensor,
        mask_image: Image.Image | np.ndarray | torch.Tensor | None = None,
        start_scale: int = START_SCALE,
        height: int | None = None,
        width: int | None = None,
        feather_radius: int = FEATHER_RADIUS,
        num_inference_steps: int | Sequence[int] | None = None,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Paint-to-image of ``image`` (no ``mask_image``) or editing of it (with one).

        Args:
            image: the painting (paint-to-image: any size, its colours those of the training image) or the edited
                image (editing: capped at 50,000 px like training images, the output keeps its size): a PIL image,
                a numpy array (H, W, C) uint8 or float in [0, 1], or a tensor (C, H, W) / (1, C, H, W) in [0, 1];
                see [`~sinddm_pipeline.image_inputs`].
            mask_image (*optional*): editing: white (>= 0.5 once in [0, 1]) marks the edited region, any size
                (resized to the image) and type as ``image``; neither empty nor the whole image.
            start_scale (`int`, defaults to 1): the scale the image is injected at, an int in [1, num_scales - 1]:
                1 (the second-coarsest, SinGAN's suggestion) keeps the layout and colours and regenerates the rest;
                finer scales keep more of the input.
            height, width (`int`, *optional*): paint-to-image: the output size. Defaults to the painting's aspect
                ratio with as many pixels as the training image (`paint_size`); one alone keeps the painting's
                aspect ratio. Editing keeps the image's size and takes neither.
            feather_radius (`int`, defaults to 8): editing: the output is w · generated + (1 - w) · image, w 1 on
                the edited region and falling linearly to 0 at this many pixels from it
                (`~sinddm_pipeline.known_pixels.feathered_weight`); pixels farther away are the image's exactly.
                An int in [0, 64].
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
            ValueError: for ``start_scale`` out of range, a mask that is empty or the whole image, ``height`` or
                ``width`` with a mask, and any other argument out of its range.

        Example:
            ```py
            >>> import torch
            >>> from PIL import Image
            >>> from sinddm_pipeline.pipeline_sinddm_paint import SinDDMPaintPipeline
            >>> pipe = SinDDMPaintPipeline.from_pretrained("models/hubble-sinddm")
            >>> pipe.set_progress_bar_config(disable=True)
            >>> choice = pipe.enable_fast_sampling()  # optional: ~10x faster
            >>> painting = Image.new("RGB", (120, 60), (10, 10, 20))  # a dark sky ...
            >>> painting.paste((230, 160, 90), (50, 20, 62, 32))  # ... with one big orange galaxy
            >>> realistic = pipe(painting, generator=torch.Generator().manual_seed(0)).images[0]
            >>> realistic.size  # the painting's 2:1 with the training image's pixels
            (315, 158)
            >>> edited = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # the training image ...
            >>> edited.paste(edited.crop((20, 20, 60, 60)), (150, 120))  # ... with a region copied elsewhere
            >>> mask = Image.new("L", edited.size)
            >>> mask.paste(255, (150, 120, 190, 160))  # where it was pasted
            >>> blended = pipe(edited, mask_image=mask, start_scale=2).images[0]  # outside: the input's pixels
            ```
        """
        self.check_inputs(start_scale, feather_radius, batch_size, output_type, generator)
        steps = self.inference_steps(num_inference_steps)
        device, dtype = self._execution_device, self.sample_dtype
        known = weight = None
        if mask_image is None:
            painting = prepare_image(image, name="image", max_pixels=None)
            if height is None and width is None:
                height, width = paint_size(painting.size, self.scheduler.config.scale_sizes[-1])
            elif height is None:
                height = max(1, round(width * painting.height / painting.width))
            elif width is None:
                width = max(1, round(height * painting.width / painting.height))
            stages = self.plan(height=height, width=width)
            original = pil_to_tensor(painting).to(device=device, dtype=dtype)
        else:
            if height is not None or width is not None:
                raise ValueError("height and width are for paint-to-image; editing keeps the image's size.")
            rgb, blend_weight = masked_input(image, mask_image, feather_radius, "edited region")
            stages = self.plan(height=rgb.height, width=rgb.width)
            original = pil_to_tensor(rgb).to(device=device, dtype=dtype)
            weight = torch.from_numpy(blend_weight).to(device)[None, None]
            known = KnownPixels.build(original, torch.from_numpy(blend_weight == 0).to(device), stages)
        check_output_size(batch_size, *stages[-1].size)

        def guidance(index: int, stage: Stage) -> StepGuidance | None:
            if known is None:
                return None
            return self.estimate_guidance(lambda estimate, t: known.keep(estimate, start_scale + index), stage.scale)

        coarser = resize(original, stages[start_scale - 1].size).repeat(batch_size, 1, 1, 1)
        sample, blurry = self.renoise(coarser, stages[start_scale], generator)
        sample = self.generate_stages(
            sample, stages[start_scale:], steps, callback_on_step_end, callback_on_step_end_tensor_inputs,
            generator=generator, blurry=blurry, guidance=guidance
        )

        if weight is not None and tuple(sample.shape[-2:]) == tuple(original.shape[-2:]):
            sample = blend(sample, original, weight)  # not when a callback interrupted the call
        return self.image_output(sample, output_type, return_dict)
