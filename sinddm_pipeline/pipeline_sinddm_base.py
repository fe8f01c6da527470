"""What every SinDDM pipeline shares: its components, loading, input checks, output, and the one denoising loop.

The loop (SPEC §5) has two levels:

- `SinDDMPipelineBase.denoise_stage` runs the reverse steps of one scale from a sample noised to the stage's start
  timestep (t_i by default, or ``start_timestep``), optionally strided (``num_inference_steps``), with the config's
  reblurring step or the plain DDPM step (``reblurring``), and an optional per-step ``guidance`` hook that replaces
  the clean-image estimate the step uses (ROI, CLIP, the blur-free step of image-guided tasks);
- `SinDDMPipelineBase.denoise_stages` runs stages coarse to fine: the output of one stage, up-sampled, is the
  next stage's blurry image, noised to that stage's start timestep.

Random generation, retargeting, ROI, CLIP and image-guided tasks are all calls of these two with different start
samples and hooks, so a new task or denoiser is written once.

Example:
    ```py
    >>> import torch
    >>> from PIL import Image
    >>> from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
    >>> from sinddm_pipeline.pyramid import build_pyramid
    >>> pyramid = build_pyramid(Image.new("RGB", (96, 72), "teal"))  # an untrained toy; use from_pretrained
    >>> components = SinDDMScheduler.from_pyramid(pyramid), SinDDMPyramid.from_pyramid(pyramid)
    >>> pipe = SinDDMPipeline(SinDDMModel(dim=8), *components)
    >>> stages = pipe.plan()
    >>> start = torch.randn(1, 3, *stages[0].size, generator=torch.Generator().manual_seed(0))
    >>> pipe.denoise_stages(start, stages, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([1, 3, 72, 96])
    ```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .acceleration import FastInferenceMixin
from .limits import check_count, check_generator
from .modeling_patch_denoiser import SinDDMPatchDenoiser
from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel
from .retargeting import Stage
from .scheduling_sinddm import SinDDMScheduler

OUTPUT_TYPES = ("pil", "np", "pt")

Generator = torch.Generator | list[torch.Generator] | None


class GuidedEstimate(NamedTuple):
    """What a guidance hook gives one step: the clean-image estimate to use (at scales > 0 with reblurring: the
    deblurred one) and, optionally, the blurry image of this step in place of the stage's."""

    pred_original_sample: torch.Tensor
    blurry_sample: torch.Tensor | None = None


StepGuidance = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor | None], GuidedEstimate | None]
"""A per-step hook ``guidance(noise_pred, timestep, sample, blurry)``: a [`GuidedEstimate`] for the step, or ``None``
to let the step use the model's own estimate. `SinDDMPipelineBase.estimate_guidance` makes one from a function that
edits the clean-image estimate."""


def check_components(
    scheduler: SinDDMScheduler, pyramid: SinDDMPyramid, denoiser: SinDDMModel | SinDDMPatchDenoiser | None = None
) -> None:
    """Refuse a pyramid and a scheduler that describe different scales, or a training-free denoiser built for
    another schedule (every SinDDM pipeline checks its components with this). A [`SinDDMPatchDenoiser`] gets the
    pyramid's images here: its references are the pipeline's pyramid."""
    if pyramid.config.scale_sizes != scheduler.config.scale_sizes:
        raise ValueError(
            "The pyramid and the scheduler describe different scales: "
            f"{pyramid.config.scale_sizes} vs {scheduler.config.scale_sizes}."
        )
    # duck-typed: vanilla diffusers loads the shipped code once per component folder, so the denoiser's class
    # may be another copy of SinDDMPatchDenoiser than this module's
    if hasattr(denoiser, "set_pyramid"):
        denoiser.check_schedule(scheduler)
        denoiser.set_pyramid(pyramid)


def postprocess(images: torch.Tensor, output_type: str) -> list[Image.Image] | np.ndarray | torch.Tensor:
    """[-1, 1] NCHW tensors to "pt" ([0, 1] NCHW), "np" ([0, 1] NHWC float32) or "pil" images."""
    images = (images / 2 + 0.5).clamp(0, 1)
    if output_type == "pt":
        return images
    array = images.float().cpu().permute(0, 2, 3, 1).numpy()
    if output_type == "np":
        return array
    return DiffusionPipeline.numpy_to_pil(array)


class SinDDMPipelineBase(FastInferenceMixin, DiffusionPipeline):
    """The components, loading, checks and denoising loop of every SinDDM pipeline (see the module docstring).

    Components:
        denoiser ([`SinDDMModel`] or [`SinDDMPatchDenoiser`]): the noise predictor, trained or training-free.
        scheduler ([`SinDDMScheduler`]): the multi-scale blur + noise process; its config holds the scale sizes.
        pyramid ([`SinDDMPyramid`]): the training image at every scale.
    """

    model_cpu_offload_seq = "denoiser"

    def __init__(
        self, denoiser: SinDDMModel | SinDDMPatchDenoiser, scheduler: SinDDMScheduler, pyramid: SinDDMPyramid
    ):
        super().__init__()
        check_components(scheduler, pyramid, denoiser)
        self.register_modules(denoiser=denoiser, scheduler=scheduler, pyramid=pyramid)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """diffusers' `DiffusionPipeline.from_pretrained` (a folder or a Hub repo id, online or from the cache).

        A repo pushed with `push_to_hub` ships code for vanilla diffusers (``trust_remote_code=True``); here it loads
        with this package's classes, without running that code. Of the keyword arguments, a folder or repo with
        shipped code uses the Hub ones (``cache_dir``, ``revision``, ``token``, ...), components and
        ``torch_dtype``.
        """
        from .loading import load_pipeline

        return load_pipeline(cls, pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_pipe(cls, pipeline: DiffusionPipeline, **kwargs) -> DiffusionPipeline:
        """diffusers' `DiffusionPipeline.from_pipe`: the same components (shared, not copied) in this pipeline class,
        e.g. ``SinDDMImg2ImgPipeline.from_pipe(sinddm_pipe)``. Note that diffusers casts the models to
        ``torch_dtype`` (float32 unless given)."""
        return super().from_pipe(pipeline, **kwargs)

    # ----------------------------------------------------------------------------------------------------------
    # inputs and outputs

    def check_call_inputs(self, batch_size: int, output_type: str, generator: Generator) -> None:
        """The checks every ``__call__`` makes: ``batch_size`` an int >= 1, a known ``output_type``, and a generator
        (or one per image)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        check_generator(generator, batch_size)

    def check_start_timestep(self, start_timestep: int | None, default: str) -> None:
        """``start_timestep`` must be ``None`` (``default`` says what that means) or an int in [1, T]."""
        if start_timestep is None:
            return
        num_timesteps = self.scheduler.config.num_train_timesteps
        try:
            check_count("start_timestep", start_timestep, 1, num_timesteps)
        except ValueError:
            raise ValueError(
                f"start_timestep must be an int in [1, {num_timesteps}] (or None for the default: {default}), "
                f"got {start_timestep!r}."
            ) from None

    def finish(self, sample: torch.Tensor, output_type: str):
        """The images of a call from its final [-1, 1] sample; frees the offload hooks."""
        images = postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        return images

    # ----------------------------------------------------------------------------------------------------------
    # the denoising loop

    def start_sample(self, shape: Sequence[int], generator: Generator) -> torch.Tensor:
        """Pure noise of ``shape`` on the pipeline's device, in `sample_dtype`: the start of a generation."""
        return randn_tensor(tuple(shape), generator=generator, device=self._execution_device, dtype=self.sample_dtype)

    def training_image(self, scale: int, batch_size: int = 1) -> torch.Tensor:
        """The training image at ``scale`` (the pyramid's), ``batch_size`` times, in [-1, 1] on the pipeline's device
        and in `sample_dtype`: where image-guided tasks start."""
        image = self.pyramid.image(scale).to(device=self._execution_device, dtype=self.sample_dtype)
        return image.repeat(batch_size, 1, 1, 1)

    def noised(self, image: torch.Tensor, timestep: int, generator: Generator) -> torch.Tensor:
        """``image`` noised to ``timestep`` (the forward process), the noise drawn from ``generator``."""
        noise = randn_tensor(image.shape, generator=generator, device=image.device, dtype=image.dtype)
        return self.scheduler.add_noise(image, noise, timestep)

    def renoise(
        self, previous: torch.Tensor, stage: Stage, generator: Generator, start_timestep: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The start of ``stage`` from the finished coarser ``previous``: (noised sample, blurry image).

        The blurry image is ``previous`` up-sampled (bilinear) to the stage's size; the sample is it noised to the
        stage's start timestep (t_i, or ``start_timestep``)."""
        blurry = F.interpolate(previous, size=stage.size, mode="bilinear", align_corners=False)
        start = self.scheduler.start_timesteps[stage.scale] if start_timestep is None else start_timestep
        return self.noised(blurry, start, generator), blurry

    def estimate_guidance(
        self,
        edit: Callable[[torch.Tensor, int], torch.Tensor | None],
        scale: int,
        reblurring: bool | None = None,
    ) -> StepGuidance:
        """A [`StepGuidance`] hook that hands each step's clean-image estimate to ``edit(estimate, timestep)`` and
        steps with what it returns (``None``: the model's own estimate, unchanged).

        The estimate is x0 = (x_t - sqrt(1 - alphā_t)·eps) / sqrt(alphā_t); at scales > 0 with the reblurring step
        (``reblurring``, default: the scheduler config's) it is the deblurred estimate, which that step takes.
        ``edit = lambda estimate, t: estimate`` gives the unguided step, bit for bit.
        """
        reblur = self.scheduler.config.reblurring if reblurring is None else reblurring

        def hook(noise_pred: torch.Tensor, t: int, sample: torch.Tensor, blurry: torch.Tensor | None):
            estimate = self.scheduler.predict_original_sample(noise_pred, t, sample)
            if scale > 0 and reblur:
                estimate = self.scheduler.deblur(estimate, blurry, t, scale)
            edited = edit(estimate, t)
            return None if edited is None else GuidedEstimate(edited)

        return hook

    def denoise_stage(
        self,
        sample: torch.Tensor,
        scale: int,
        *,
        blurry: torch.Tensor | None = None,
        generator: Generator = None,
        num_inference_steps: int | None = None,
        start_timestep: int | None = None,
        reblurring: bool | None = None,
        guidance: StepGuidance | None = None,
        resample_steps: int = 0,
        progress_bar=None,
    ) -> torch.Tensor:
        """Run the reverse steps of one scale on ``sample`` (already noised to the start timestep).

        Args:
            sample: x at the start timestep.
            scale: the model scale.
            blurry: the up-sampled coarser output (scales > 0): the reblurring step's blurry image, and the
                conditioning of a training-free denoiser.
            generator: for the DDPM noise.
            num_inference_steps: at most this many strided steps (``None``: every step, exact).
            start_timestep: the timestep ``sample`` was noised to (``None``: the scale's t_i, or T at scale 0).
            reblurring: ``False`` for the plain DDPM step at every scale (``None``: the scheduler config's).
            guidance: a [`StepGuidance`] hook, called after the denoiser at every step.
            resample_steps: RePaint's resampling (off by default): after every step that draws noise (the plain
                DDPM steps: scale 0, or ``reblurring=False``) but the last (t = 0), its result is noised back to the
                step's timestep (`SinDDMScheduler.undo_step`) and the step redone, this many times; the callback
                and the progress bar see each timestep once. The deterministic reblurring steps are not resampled:
                there, repeated re-noising drifts towards the denoiser's mode (sparser, flatter content).
            progress_bar: updated once per step.
        """
        self.scheduler.set_timesteps(
            num_inference_steps=num_inference_steps, device=sample.device, scale=scale, start_timestep=start_timestep
        )
        draws_noise = scale == 0 or not (self.scheduler.config.reblurring if reblurring is None else reblurring)
        # plain ints: reading a device tensor's value each step would synchronise a GPU every step
        for t in self.scheduler.timesteps.tolist():
            if self.interrupt:
                break
            # RePaint: the step's result noised back to t and the step redone (DDPM steps, never at t = 0)
            for repeat in range(1 + (resample_steps if t > 0 and draws_noise else 0)):
                if repeat:
                    sample = self.scheduler.undo_step(sample, t, generator=generator)
                noise_pred = self.predict_noise(sample, t, scale, blurry)
                guided = None if guidance is None else guidance(noise_pred, t, sample, blurry)
                sample = self.scheduler.step(
                    noise_pred,
                    t,
                    sample,
                    scale=scale,
                    blurry_sample=blurry if guided is None or guided.blurry_sample is None else guided.blurry_sample,
                    pred_original_sample=None if guided is None else guided.pred_original_sample,
                    reblurring=reblurring,
                    generator=generator,
                ).prev_sample
            sample = self.end_step(t, sample)
            if progress_bar is not None:
                progress_bar.update()
        return sample

    def denoise_stages(
        self,
        sample: torch.Tensor,
        stages: Sequence[Stage],
        *,
        generator: Generator = None,
        blurry: torch.Tensor | None = None,
        num_inference_steps: Sequence[int | None] | None = None,
        reblurring: bool | None = None,
        guidance: Callable[[int, Stage], StepGuidance | None] | None = None,
        resample_steps: int = 0,
        progress_bar=None,
    ) -> torch.Tensor:
        """Generate coarse to fine: ``sample`` (noised to the first stage's start) is denoised at ``stages[0]``,
        then every further stage starts from the previous output, up-sampled and noised (`renoise`).

        Args:
            sample: the first stage's start: pure noise at scale 0, or a noised image.
            stages: the stages to run (model scale and size), coarsest first.
            generator: for every noise draw.
            blurry: the first stage's blurry image, if it has one.
            num_inference_steps: one entry per model scale (``None`` entries, or ``None``: every step).
            reblurring: ``False`` for the plain DDPM step at every scale (``None``: the scheduler config's).
            guidance: ``guidance(index, stage)`` gives the [`StepGuidance`] hook of a stage (or ``None``).
            resample_steps: RePaint's resampling at every stage (see `denoise_stage`).
            progress_bar: updated once per step.
        """
        for index, stage in enumerate(stages):
            if self.interrupt:
                break
            if index > 0:
                sample, blurry = self.renoise(sample, stage, generator)
            sample = self.denoise_stage(
                sample,
                stage.scale,
                blurry=blurry,
                generator=generator,
                num_inference_steps=None if num_inference_steps is None else num_inference_steps[stage.scale],
                reblurring=reblurring,
                guidance=None if guidance is None else guidance(index, stage),
                resample_steps=resample_steps,
                progress_bar=progress_bar,
            )
        return sample
