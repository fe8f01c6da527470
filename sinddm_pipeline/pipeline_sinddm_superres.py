"""SinDDMSuperResolutionPipeline: upscale a given image with the finest scale's statistics (SinGAN-style SR).

The extra-scales mechanism of generation beyond the training size (`~sinddm_pipeline.retargeting`), started from
the given image instead of a sample: every stage runs the model's finest scale on an image about r (the model's
scale factor) times larger than the last, from the input size up to exactly ``upscale_factor`` times it. Each stage
starts from the previous output (the input at first), up-sampled and noised to the finest scale's start timestep
(`SinDDMPipelineBase.renoise`), and is denoised with the reblurring step (`SinDDMPipelineBase.denoise_stages`): the
up-sampled image is the blurry image the finest scale adds its detail to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from .image_inputs import prepare_image
from .limits import MAX_OUTPUT_PIXELS, check_output_size
from .pipeline_sinddm_base import SinDDMPipelineBase
from .pyramid import pil_to_tensor
from .retargeting import Stage

MIN_UPSCALE_FACTOR = 1.25
"""The smallest ``upscale_factor``: below it a stage would add almost no pixels to fill."""
MAX_UPSCALE_FACTOR = 4.0
"""The largest ``upscale_factor``: beyond it the finest scale's detail is asked to invent most of the image."""
START_TIMESTEP = 5
"""The default start timestep of every stage (at most the finest scale's t_i): on the shipped hubble model the finest
scale's own t_i (25) redraws the detail so far that colours drift (blue stars turn orange at 4x); 5 keeps the
input's colours and shapes and still sharpens them (docs/tasks/super_resolution.png)."""


def check_upscale_factor(upscale_factor: float) -> float:
    """``upscale_factor`` as a float, or a ValueError naming the allowed range [1.25, 4].

    Example:
        >>> check_upscale_factor(2)
        2.0
        >>> check_upscale_factor(8)
        Traceback (most recent call last):
            ...
        ValueError: upscale_factor must be a number in [1.25, 4.0], got 8.
    """
    if (
        isinstance(upscale_factor, bool)
        or not isinstance(upscale_factor, (int, float))
        or not math.isfinite(upscale_factor)
        or not MIN_UPSCALE_FACTOR <= upscale_factor <= MAX_UPSCALE_FACTOR
    ):
        raise ValueError(
            f"upscale_factor must be a number in [{MIN_UPSCALE_FACTOR}, {MAX_UPSCALE_FACTOR}], got {upscale_factor!r}."
        )
    return float(upscale_factor)


def upscale_stages(size: tuple[int, int], upscale_factor: float, scale_factor: float, scale: int) -> list[Stage]:
    """The stages of upscaling an image of ``size`` = (height, width) by ``upscale_factor`` with the model scale
    ``scale``: n = max(1, floor(log(factor) / log(r))) stages of equal ratio factor^(1/n) (r or a little more, as
    the extra scales of `~sinddm_pipeline.retargeting.plan_stages`), the last exactly (round(factor · height),
    round(factor · width)). The input size itself is not a stage: the input is the first stage's blurry image.

    Example:
        >>> [stage.size for stage in upscale_stages((208, 239), 2.0, 2**0.5, 4)]
        [(294, 338), (416, 478)]
        >>> [stage.size for stage in upscale_stages((100, 100), 1.25, 2**0.5, 4)]
        [(125, 125)]
    """
    height, width = size
    count = max(1, math.floor(math.log(upscale_factor) / math.log(scale_factor) + 1e-9))
    sizes = [
        (round(height * upscale_factor ** (k / count)), round(width * upscale_factor ** (k / count)))
        for k in range(1, count)
    ]
    sizes.append((round(height * upscale_factor), round(width * upscale_factor)))
    return [Stage(scale=scale, size=stage_size) for stage_size in sizes]


class SinDDMSuperResolutionPipeline(SinDDMPipelineBase):
    r"""Upscale an image by 1.25x to 4x with a SinDDM model's finest-scale statistics: the new detail is the
    training image's fine detail, the layout is the input's (see the module docstring for the stages).

    Works with a trained model (`from_pretrained`) and with a training-free pipeline
    (``SinDDMSuperResolutionPipeline.from_pipe(SinDDMPipeline.from_image(image))``); it shares the components of
    [`SinDDMPipeline`].

    Components: those of [`SinDDMPipeline`] (``denoiser``, trained or training-free; ``scheduler``; ``pyramid``).

    Example:
        ```py
        >>> import torch
        >>> from skimage import data
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.pipeline_sinddm_superres import SinDDMSuperResolutionPipeline
        >>> pipe = SinDDMPipeline.from_image(data.coffee(), max_pixels=6000)  # training-free, small and fast
        >>> sr = SinDDMSuperResolutionPipeline.from_pipe(pipe)
        >>> sr.set_progress_bar_config(disable=True)
        >>> low = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)
        >>> low.size
        (94, 63)
        >>> sr(low, upscale_factor=2, generator=torch.Generator().manual_seed(0)).images[0].size
        (188, 126)
        ```
    """

    def prepare_input(self, image: Image.Image | np.ndarray | torch.Tensor, upscale_factor: float) -> torch.Tensor:
        """The input as a (1, 3, H, W) tensor in [-1, 1] on the pipeline's device, in `sample_dtype`.

        The input is not resized (upscaling it as it is, is the point), so there is no pixel cap on it; the output,
        ``upscale_factor`` times larger on each side, must stay within `~sinddm_pipeline.limits.MAX_OUTPUT_PIXELS`
        (4096 x 4096), which bounds the input at that divided by ``upscale_factor``².

        Raises:
            ValueError: for an input that is not an image (see `~sinddm_pipeline.image_inputs`), is smaller than
                8 px a side, or would give too large an output.
        """
        rgb = prepare_image(image, name="image", max_pixels=None)
        height, width = round(rgb.height * upscale_factor), round(rgb.width * upscale_factor)
        if height * width > MAX_OUTPUT_PIXELS:
            raise ValueError(
                f"image: {rgb.width}x{rgb.height} px upscaled by {upscale_factor:g} would be {width}x{height} = "
                f"{width * height:,} pixels; at most {MAX_OUTPUT_PIXELS:,} (4096x4096) are allowed: use a smaller "
                f"image (at most {int(MAX_OUTPUT_PIXELS / upscale_factor**2):,} px at this factor) or upscale_factor."
            )
        return pil_to_tensor(rgb).to(device=self._execution_device, dtype=self.sample_dtype)

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray | torch.Tensor,
        upscale_factor: float = 2.0,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | Sequence[int] | None = None,
        start_timestep: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        tileable: bool = False,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Upscale ``image`` by ``upscale_factor``.

        Args:
            image: the image to upscale: a PIL image, a numpy array (H, W, C) uint8 or float in [0, 1], or a tensor
                (C, H, W) / (1, C, H, W) in [0, 1] (see [`~sinddm_pipeline.image_inputs`]); at least 8 px a side.
                Not resized first: any size whose upscaled output fits 4096 x 4096 px.
            upscale_factor (`float`, defaults to 2.0): a number in [1.25, 4]; the output is (round(factor · height),
                round(factor · width)). Stages of about the model's scale factor r each (2x: two stages of
                sqrt(2) for r = sqrt(2); 4x: four).
            batch_size (`int`, defaults to 1): how many results from the same input.
            generator (`torch.Generator` or a list of them): makes the result deterministic.
            num_inference_steps (`int`, *optional*): at most this many (>= 2) denoising steps per stage (a list per
                scale, as [`SinDDMPipeline`] takes, uses its finest entry). ``None``: the finest scale's t_i steps
                for a trained model (exact), the denoiser's own or the fast-sampling steps when set.
            start_timestep (`int`, *optional*): the timestep every stage is noised to, an int in [1, T]: lower keeps
                more of the input, higher adds more of the training image's detail (and, on the shipped hubble
                model, from about 10 drifts its colours). ``None``: `START_TIMESTEP` (5), or the finest scale's t_i
                if smaller (the start of generation's extra scales: 25 on hubble).
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (NHWC in [0, 1]) or `"pt"` (NCHW in [0, 1]).
            return_dict (`bool`, defaults to `True`): return an [`~pipelines.ImagePipelineOutput`], else a tuple.
            tileable (`bool`, defaults to `False`): for an input that tiles: the upscaled image tiles without seams
                too (wrap-around up-sampling, circular padding).
            callback_on_step_end (`Callable`, *optional*): diffusers' step callback, called after every denoising
                step as ``callback_on_step_end(pipe, step_index, timestep, {"sample": sample})``; a returned
                ``{"sample": ...}`` replaces the sample.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): the names passed (default ``["sample"]``).

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the upscaled images.

        Raises:
            ValueError: for an ``upscale_factor`` outside [1.25, 4], an input that is not an image or too large
                an output, a model with a single scale (its only scale starts from pure noise), or bad call
                arguments.

        Example:
            ```py
            >>> import torch
            >>> from sinddm_pipeline import SinDDMPipeline
            >>> from sinddm_pipeline.pipeline_sinddm_superres import SinDDMSuperResolutionPipeline
            >>> pipe = SinDDMSuperResolutionPipeline.from_pretrained("models/hubble-sinddm")
            >>> pipe.set_progress_bar_config(disable=True)
            >>> choice = pipe.enable_fast_sampling()  # optional: a few steps per stage
            >>> image = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # any image; here the training image
            >>> pipe(image, upscale_factor=2, generator=torch.Generator().manual_seed(0)).images[0].size
            (478, 416)
            ```
        """
        upscale_factor = check_upscale_factor(upscale_factor)
        self.check_call_inputs(batch_size, output_type, generator)
        self.check_tileable(tileable)
        self.check_start_timestep(start_timestep, f"{START_TIMESTEP} (or the finest scale's t_i if smaller)")
        if self.scheduler.num_scales < 2:
            raise ValueError(
                "Super-resolution needs a model with at least 2 scales: the finest scale of a one-scale model starts "
                "from pure noise, so the input would be lost."
            )
        steps = self.inference_steps(num_inference_steps)
        start = self.prepare_input(image, upscale_factor).repeat(batch_size, 1, 1, 1)
        finest = self.scheduler.num_scales - 1
        stages = upscale_stages(tuple(start.shape[-2:]), upscale_factor, self.scheduler.config.scale_factor, finest)
        check_output_size(batch_size, *stages[-1].size)

        if start_timestep is None:
            start_timestep = min(START_TIMESTEP, self.scheduler.start_timesteps[finest])
        per_stage = start_timestep if steps[finest] is None else min(start_timestep, steps[finest])
        sample, blurry = self.renoise(start, stages[0], generator, start_timestep, wrap=tileable)
        sample = self.generate_stages(
            sample, stages, steps, callback_on_step_end, callback_on_step_end_tensor_inputs,
            total=per_stage * len(stages), generator=generator, blurry=blurry, tileable=tileable,
            start_timestep=start_timestep
        )
        return self.image_output(sample, output_type, return_dict)
