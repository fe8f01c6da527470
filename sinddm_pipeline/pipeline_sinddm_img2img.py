"""SinDDMImg2ImgPipeline: style transfer and harmonization with a SinDDM model (SPEC §6)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image
from skimage.exposure import match_histograms
from skimage.filters import gaussian
from skimage.morphology import dilation, disk

from .image_inputs import MAX_PIXELS, prepare_image, prepare_mask
from .limits import check_output_size
from .pipeline_sinddm_base import GuidedEstimate, SinDDMPipelineBase
from .pyramid import pil_to_tensor

logger = logging.getLogger(__name__)

STYLE_TRANSFER_TIMESTEP = 15
"""Default start timestep of style transfer (no mask), the reference's ``--start_t_style``."""
HARMONIZATION_TIMESTEP = 5
"""Default start timestep of harmonization (with a mask), the reference's ``--start_t_harm``."""
MASK_DILATION_RADIUS = 7
MASK_BLUR_SIGMA = 5.0


def harmonization_mask(mask: np.ndarray) -> np.ndarray:
    """The blending weight of harmonization from a (height, width) mask: its non-zero pixels dilated by a disk of
    radius 7, Gaussian-blurred (sigma 5) and min-max normalised to [0, 1], as the reference's ``dilate_mask``.

    A mask that covers the whole image after dilation gives weight 1 everywhere (the reference would divide by 0).

    Example:
        >>> import numpy as np
        >>> from sinddm_pipeline.pipeline_sinddm_img2img import harmonization_mask
        >>> mask = np.zeros((64, 64))
        >>> mask[30:34, 30:34] = 1.0
        >>> weight = harmonization_mask(mask)
        >>> float(weight.max()), float(weight[0, 0]), float(weight[32, 32]) > 0.9
        (1.0, 0.0, True)
    """
    dilated = dilation(np.asarray(mask) > 0, disk(MASK_DILATION_RADIUS))
    blurred = gaussian(dilated.astype(np.float64), sigma=MASK_BLUR_SIGMA)
    low, high = float(blurred.min()), float(blurred.max())
    if high - low <= 0:
        return np.ones_like(blurred) if high > 0 else np.zeros_like(blurred)
    return (blurred - low) / (high - low)


def histogram_match(image: Image.Image, reference: Image.Image) -> Image.Image:
    """``image`` with each RGB channel's histogram matched to ``reference``'s (skimage.exposure.match_histograms)."""
    matched = match_histograms(np.asarray(image), np.asarray(reference), channel_axis=-1)
    return Image.fromarray(np.clip(np.round(matched), 0, 255).astype(np.uint8))


class SinDDMImg2ImgPipeline(SinDDMPipelineBase):
    r"""Image-guided SinDDM: style transfer (a content image in the training image's style) and harmonization (an
    object pasted into an image made to match it), with the components of [`SinDDMPipeline`].

    The input image starts at the finest scale: it is noised to a small timestep ``t`` and denoised from ``t - 1``
    to 0 with the reblurring step, the blur mix of that scale turned off (gamma = 0), so that the model pulls the
    image's fine patches towards the training image's. Convert between the pipelines with ``from_pipe``; they share
    the weights.

    Components:
        denoiser ([`SinDDMModel`] or [`SinDDMPatchDenoiser`]): the noise predictor, trained or training-free (which
            gets no blurry image here: the blur mix is off, so it denoises with the sharp patches alone).
        scheduler ([`SinDDMScheduler`]): the multi-scale blur + noise process.
        pyramid ([`SinDDMPyramid`]): the training image at every scale (its finest scale is the histogram reference).

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> from sinddm_pipeline import SinDDMImg2ImgPipeline, SinDDMPipeline
        >>> from sinddm_pipeline import SinDDMModel, SinDDMPyramid, SinDDMScheduler
        >>> from sinddm_pipeline.pyramid import build_pyramid
        >>> pyramid = build_pyramid(Image.new("RGB", (96, 72), "teal"))  # an untrained toy; use from_pretrained
        >>> pipe = SinDDMImg2ImgPipeline(
        ...     SinDDMModel(dim=8), SinDDMScheduler.from_pyramid(pyramid), SinDDMPyramid.from_pyramid(pyramid)
        ... )
        >>> pipe.set_progress_bar_config(disable=True)
        >>> content = Image.new("RGB", (120, 80), "orange")
        >>> pipe(content, generator=torch.Generator().manual_seed(0)).images[0].size  # style transfer
        (120, 80)
        >>> mask = Image.new("L", (120, 80))
        >>> mask.paste(255, (40, 20, 80, 60))
        >>> pipe(content, mask_image=mask).images[0].size  # harmonization of the pasted square
        (120, 80)
        >>> generation = SinDDMPipeline.from_pipe(pipe)  # random samples with the same weights
    """

    def check_inputs(
        self,
        start_timestep: int | None,
        match_histogram: bool | None,
        batch_size: int,
        output_type: str,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> None:
        self.check_call_inputs(batch_size, output_type, generator)
        self.check_start_timestep(
            start_timestep, f"{STYLE_TRANSFER_TIMESTEP} for style transfer, {HARMONIZATION_TIMESTEP} for harmonization"
        )
        if match_histogram is not None and not isinstance(match_histogram, bool):
            raise ValueError(f"match_histogram must be True, False or None (the default), got {match_histogram!r}.")

    def prepare_inputs(
        self,
        image: Image.Image | np.ndarray | torch.Tensor,
        mask_image: Image.Image | np.ndarray | torch.Tensor | None,
        match_histogram: bool,
    ) -> tuple[Image.Image, np.ndarray | None]:
        """The RGB input as the denoising starts from it (capped at 50,000 px, histogram-matched when asked) and the
        harmonization weight (``None`` without a mask), in the reference's order: cap, mask, histogram."""
        rgb = prepare_image(image, name="image", max_pixels=None)
        original_size = rgb.size
        rgb = prepare_image(rgb, name="image", max_pixels=MAX_PIXELS)
        weight = None
        if mask_image is not None:
            weight = harmonization_mask(prepare_mask(mask_image, rgb.size, "mask_image", original_size))
        if match_histogram:
            rgb = histogram_match(rgb, self.pyramid.pil(self.pyramid.num_scales - 1))
        return rgb, weight

    def blur_free_step(
        self, noise_pred: torch.Tensor, t: int, sample: torch.Tensor, blurry: torch.Tensor | None
    ) -> GuidedEstimate:
        """The reblurring step with gamma = 0 (a [`StepGuidance`] hook): the clean estimate x0 is passed both as the
        deblurred estimate and as the blurry image, so neither blur mix changes it."""
        x0 = self.scheduler.predict_original_sample(noise_pred, t, sample)
        return GuidedEstimate(x0, x0)

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | np.ndarray | torch.Tensor,
        mask_image: Image.Image | np.ndarray | torch.Tensor | None = None,
        start_timestep: int | None = None,
        match_histogram: bool | None = None,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Style transfer (no ``mask_image``) or harmonization (with one) of ``image``.

        Args:
            image: the content image (style transfer) or the naive composite (harmonization): a PIL image, a numpy
                array (H, W, C) uint8 or float in [0, 1], or a tensor (C, H, W) / (1, C, H, W) in [0, 1]; see
                [`~sinddm_pipeline.image_inputs`]. Images over 50,000 px are resized down (LANCZOS), as the
                reference does; the output has the (resized) input's size.
            mask_image (*optional*): white (non-zero) where the object was pasted, any size (resized to the image)
                and type as ``image``. Its non-zero pixels are dilated (disk of radius 7), blurred (sigma 5) and
                normalised to a weight m; the output is m · result + (1 - m) · input.
            start_timestep (`int`, *optional*): noise the image to this t in [1, 100] and denoise t - 1 .. 0;
                larger changes more. Defaults to 15 for style transfer, 5 for harmonization.
            match_histogram (`bool`, *optional*): match the image's per-channel histograms to the training image's
                (finest scale) first. Defaults to on for style transfer, off for harmonization.
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

        Example:
            ```py
            >>> from PIL import Image
            >>> from skimage import data
            >>> from sinddm_pipeline import SinDDMImg2ImgPipeline
            >>> pipe = SinDDMImg2ImgPipeline.from_pretrained("models/hubble-sinddm")  # or a Hub repo id
            >>> pipe.set_progress_bar_config(disable=True)
            >>> rocket = Image.fromarray(data.rocket())
            >>> styled = pipe(rocket).images[0]  # the rocket in the training image's style
            >>> styled.size  # resized down to 50,000 pixels, as the reference does
            (273, 182)
            >>> stronger = pipe(rocket, start_timestep=25).images[0]  # further from the input
            >>> composite = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # the training image ...
            >>> composite.paste(rocket.resize((60, 40)), (100, 80))  # ... with a pasted object
            >>> mask = Image.new("L", composite.size)
            >>> mask.paste(255, (100, 80, 160, 120))  # where it was pasted
            >>> harmonized = pipe(composite, mask_image=mask).images[0]  # blended in; outside the mask unchanged
            ```
        """
        self.check_inputs(start_timestep, match_histogram, batch_size, output_type, generator)
        harmonize = mask_image is not None
        if start_timestep is None:
            start_timestep = HARMONIZATION_TIMESTEP if harmonize else STYLE_TRANSFER_TIMESTEP
        if match_histogram is None:
            match_histogram = not harmonize
        rgb, weight = self.prepare_inputs(image, mask_image, match_histogram)
        check_output_size(batch_size, rgb.height, rgb.width)

        device = self._execution_device
        dtype = self.sample_dtype
        start = pil_to_tensor(rgb).to(device=device, dtype=dtype).repeat(batch_size, 1, 1, 1)
        scale = self.scheduler.num_scales - 1

        sample = self.noised(start, start_timestep, generator)
        with self.denoising(start_timestep, callback_on_step_end, callback_on_step_end_tensor_inputs) as progress_bar:
            # at scales > 0 the reblurring step without its blur (gamma = 0); a one-scale model: plain DDPM steps
            sample = self.denoise_stage(
                sample,
                scale,
                generator=generator,
                start_timestep=start_timestep,
                reblurring=scale > 0,
                guidance=self.blur_free_step if scale > 0 else None,
                progress_bar=progress_bar,
            )

        if weight is not None:
            m = torch.from_numpy(weight).to(device=device, dtype=sample.dtype)[None, None]
            result = ((sample + 1) / 2).clamp(0, 1)
            kept = ((start.to(sample.dtype) + 1) / 2).clamp(0, 1)
            sample = (m * result + (1 - m) * kept) * 2 - 1

        return self.image_output(sample, output_type, return_dict)
