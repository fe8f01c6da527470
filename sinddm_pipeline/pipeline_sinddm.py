"""SinDDMPipeline: random generation, retargeting and ROI-guided generation, coarse to fine (SPEC §5, §6)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from .limits import check_output_size
from .pipeline_sinddm_base import SinDDMPipelineBase, StepGuidance
from .pyramid import DEFAULT_MAX_PIXELS
from .retargeting import Stage
from .roi import ROIGuidance, check_roi_arguments

logger = logging.getLogger(__name__)


class SinDDMPipeline(SinDDMPipelineBase):
    r"""Generate images like the single training image of a SinDDM model, at its size or any other.

    Components:
        denoiser ([`SinDDMModel`] or [`SinDDMPatchDenoiser`]): the noise predictor, trained or training-free.
        scheduler ([`SinDDMScheduler`]): the multi-scale blur + noise process; its config holds the scale sizes.
        pyramid ([`SinDDMPyramid`]): the training image at every scale (used by image-guided tasks, and the
            reference patches of a training-free denoiser).

    Two ways to get one: `from_pretrained` (a trained model, from a folder or the Hub) or `from_image` (any image,
    no training).
    """

    @classmethod
    def from_image(cls, image, max_pixels: int = DEFAULT_MAX_PIXELS, **denoiser_options) -> SinDDMPipeline:
        r"""A ready training-free pipeline for ``image``: its pyramid, a scheduler with the second-order solver and a
        [`SinDDMPatchDenoiser`] on the pyramid's patches. No training, no download; every SinDDM pipeline takes it
        through ``from_pipe``, and ``save_pretrained`` / ``from_pretrained`` round-trip it (configs and the
        pyramid: no weights, no pickle).

        Args:
            image: the training image: a path, a PIL image, a numpy array (H, W, C) uint8 or float in [0, 1], or a
                tensor (C, H, W) in [0, 1] (see [`~sinddm_pipeline.image_inputs`]). Images over ``max_pixels``
                are resized down (LANCZOS, with a log line) as for training.
            max_pixels (`int`, defaults to 50,000): the pixel cap of the pyramid's finest scale (SPEC §1).
            denoiser_options: options of [`SinDDMPatchDenoiser`] (``patch_sizes``, ``search="exact"``, ...).

        Raises:
            ValueError: for an input that is not an image, or an image too small for two pyramid scales.

        Example:
            ```py
            >>> import torch
            >>> from skimage import data
            >>> from sinddm_pipeline import SinDDMPipeline
            >>> pipe = SinDDMPipeline.from_image(data.coffee())  # seconds, no training
            >>> pipe.set_progress_bar_config(disable=True)
            >>> image = pipe(generator=torch.Generator().manual_seed(0)).images[0]
            >>> image.size
            (273, 182)
            ```
        """
        from .training_free import training_free_components

        return cls(**training_free_components(image, max_pixels, **denoiser_options))

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        subfolder: str | None = None,
        **folder_kwargs,
    ) -> str:
        """Upload the pipeline to the Hub with a model card, the training image, a sample grid and its code (so that
        vanilla diffusers loads it with ``trust_remote_code=True``); see `hub_folder.prepare_hub_folder`.

        Same arguments as diffusers' `PushToHubMixin.push_to_hub` (safetensors only, no ``variant`` or
        ``subfolder``), plus ``training_args``, ``num_grid_samples``, ``seed`` and ``license`` for the card.

        Example:
            ```py
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")
            >>> # needs the Hub and a token (huggingface-cli login), so the docstring test skips it
            >>> pipe.push_to_hub("me/sinddm-hubble", private=True)  # doctest: +SKIP
            ```
        """
        if not safe_serialization or variant is not None or subfolder is not None:
            raise ValueError("SinDDMPipeline.push_to_hub uploads safetensors only, without variant or subfolder.")
        from .hub_folder import push_to_hub

        return push_to_hub(
            self,
            repo_id,
            commit_message=commit_message,
            private=private,
            token=token,
            create_pr=create_pr,
            **folder_kwargs,
        )

    def prepare_roi(
        self,
        roi_source_box: Sequence[int] | None,
        roi_target_boxes: Sequence[Sequence[int]] | None,
        stages: list[Stage],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> ROIGuidance | None:
        """Check the ROI arguments of `__call__` against the training image and the output size of ``stages``, and
        prepare the source patch of every scale; ``None`` without ROI arguments."""
        checked = check_roi_arguments(
            roi_source_box, roi_target_boxes, tuple(self.scheduler.config.scale_sizes[-1]), stages[-1].size
        )
        if checked is None:
            return None
        if self.scheduler.num_scales == 1:
            logger.warning("This model has a single scale: ROI guidance acts at the coarser scales only, so it is off.")
        images = [self.pyramid.image(index).to(device=device, dtype=dtype) for index in range(self.pyramid.num_scales)]
        return ROIGuidance.build(*checked, images, self.scheduler.config.scale_factor, stages)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        height_scale: float = 1.0,
        width_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        roi_source_box: Sequence[int] | None = None,
        roi_target_boxes: Sequence[Sequence[int]] | None = None,
        num_inference_steps: int | Sequence[int] | None = None,
        tileable: bool = False,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""Generate new images, coarse to fine.

        Args:
            batch_size (`int`, defaults to 1): how many images.
            generator (`torch.Generator` or a list of them): makes generation deterministic.
            height_scale, width_scale (`float`, defaults to 1.0): retargeting factors; every scale is resized by
                them, so the output holds more (or less) content at the same scale.
            height, width (`int`, *optional*): the exact output size in pixels. An enlargement beyond the training
                size adds extra scales (more detail), the rest is retargeting. One alone keeps the other side.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (NHWC in [0, 1]) or `"pt"` (NCHW in [0, 1]).
            return_dict (`bool`, defaults to `True`): return an [`~pipelines.ImagePipelineOutput`], else a tuple.
            roi_source_box (`(y, x, h, w)`, *optional*): ROI-guided generation: a box of the training image (its
                finest scale, in pixels: top row, left column, height, width) to copy into ``roi_target_boxes``.
            roi_target_boxes (list of `(y, x, h, w)`, *optional*): where the source region should appear, in pixels
                of the output image. At every scale but the finest, each clean-image estimate gets, inside every
                target box, 0.8 · the source patch (at that scale, resized to the box) + 0.2 · the estimate; the
                finest scale blends it in (SPEC §6). Give both ROI arguments or neither.
            num_inference_steps (`int` or list of `int`, *optional*): a speed-up, off by default: run at most this
                many (>= 2) evenly spaced denoising steps per scale instead of all of them (100 at the coarsest, t_i
                above), with the respaced DDPM step at scale 0 and a strided reblurring step above. A list gives each
                scale its own count, coarsest first (the coarsest scale is the cheapest per step). ``None`` is the
                exact reference for a trained model; a training-free pipeline (`from_image`) defaults to its
                denoiser's ``config.num_inference_steps``. Large strides at the fine scales need the scheduler's
                second-order solver
                (``pipe.scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=2)``): with it,
                ``[10, 6, 5, 4, 3]`` matches the exact path's quality (benchmarks/RESULTS.md); with the reference
                step it does not.
            tileable (`bool`, defaults to `False`): seamless output that tiles without seams: the denoiser sees the
                image as a torus (circular padding) and every up-sampling between scales wraps around, so the
                last column joins the first (and the last row the first) as smoothly as neighbouring pixels
                inside (`~sinddm_pipeline.metrics.seam_ratio` near 1; about 2-40 without).
            callback_on_step_end (`Callable`, *optional*): diffusers' step callback, called after every denoising
                step of every scale as ``callback_on_step_end(pipe, step_index, timestep, callback_kwargs)`` with
                ``callback_kwargs = {"sample": sample}``; a returned ``{"sample": ...}`` replaces the sample.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): the names passed (default ``["sample"]``).

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the generated images.

        Example:
            ```py
            >>> import torch
            >>> from sinddm_pipeline import SinDDMPipeline
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")  # a folder or a Hub repo id
            >>> pipe.set_progress_bar_config(disable=True)
            >>> choice = pipe.enable_fast_sampling()  # optional: ~10x faster, quality held (without: the exact path)
            >>> generator = torch.Generator().manual_seed(0)
            >>> image = pipe(generator=generator).images[0]  # like the training image
            >>> image.size
            (239, 208)
            >>> pipe(width_scale=2.0, generator=generator).images[0].size  # retargeted: twice as wide
            (478, 208)
            >>> pipe(height=300, width=300).images[0].size  # any exact size
            (300, 300)
            >>> large = pipe(height=2 * image.height, width=2 * image.width).images[0]  # 2x: extra, finer scales
            >>> # ROI: the training image's region at rows 40-79, columns 60-109 appears twice, side by side
            >>> roi = pipe(roi_source_box=(40, 60, 40, 50), roi_target_boxes=[(100, 10, 40, 50), (100, 150, 40, 50)])
            >>> tile = pipe(tileable=True, generator=generator).images[0]  # seamless: tiles without seams
            ```
        """
        self.check_call_inputs(batch_size, output_type, generator)
        self.check_tileable(tileable)
        steps = self.inference_steps(num_inference_steps)
        stages = self.plan(height_scale, width_scale, height, width)
        check_output_size(batch_size, *stages[-1].size)
        roi = self.prepare_roi(roi_source_box, roi_target_boxes, stages, self._execution_device, self.sample_dtype)

        def guidance(index: int, stage: Stage) -> StepGuidance | None:
            if roi is None or not roi.guides(index):
                return None
            return self.estimate_guidance(lambda estimate, t: roi.apply(estimate, index, stage.scale), stage.scale)

        sample = self.start_sample((batch_size, 3, *stages[0].size), generator)
        sample = self.generate_stages(
            sample, stages, steps, callback_on_step_end, callback_on_step_end_tensor_inputs, generator=generator,
            guidance=guidance, tileable=tileable
        )
        return self.image_output(sample, output_type, return_dict)
