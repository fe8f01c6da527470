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

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .acceleration import FastInferenceMixin
from .dtypes import quiet_dtype_cast
from .limits import check_count, check_generator
from .modeling_patch_denoiser import SinDDMPatchDenoiser
from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel
from .retargeting import Stage, plan_stages
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

StepNoise = Callable[[int], torch.Tensor]
"""A noise provider ``noise(timestep)`` of one stage, used instead of draws from the generator (animation walks
them along a loop): the standard normal noise (shape and dtype of the sample) that enters at ``timestep``. At the
stage's start timestep it is the noise of its start sample (`SinDDMPipelineBase.renoise`); below, the noise of the
DDPM step from ``timestep``, asked only at steps that draw noise: t > 0 with the plain DDPM step (scale 0, or
``reblurring=False``)."""


def wrap_interpolate(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``image`` (N, C, H, W) resized to ``size`` = (height, width) bilinearly as a torus: the pixels at one border
    interpolate with those at the opposite border, so an image that tiles still tiles after resizing.

    The image is tiled 3 x 3, resized to 3 x ``size`` (the same ratio, so every output pixel samples the same place)
    and the centre cut out.

    Example:
        >>> import torch
        >>> image = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 2, 4)
        >>> wrap_interpolate(image, (2, 8))[0, 0, 0]  # the first and last pixels mix 0 and 3 across the seam
        tensor([0.7500, 0.2500, 0.7500, 1.2500, 1.7500, 2.2500, 2.7500, 2.2500])
    """
    height, width = int(size[0]), int(size[1])
    tiled = image.repeat(1, 1, 3, 3)
    resized = F.interpolate(tiled, size=(3 * height, 3 * width), mode="bilinear", align_corners=False)
    return resized[..., height : 2 * height, width : 2 * width]


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
        e.g. ``SinDDMImg2ImgPipeline.from_pipe(sinddm_pipe)``.

        The fast-sampling settings of ``pipeline`` (`enable_fast_sampling`) carry over: the shared denoiser keeps
        its dtype and memory format (diffusers would cast every model to float32; ``torch_dtype`` still casts them
        all) and calls without ``num_inference_steps`` take the same fast steps.

        Example:
            >>> from sinddm_pipeline import SinDDMPipeline
            >>> from sinddm_pipeline.pipeline_sinddm_inpaint import SinDDMInpaintPipeline
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")
            >>> choice = pipe.enable_fast_sampling()
            >>> inpaint = SinDDMInpaintPipeline.from_pipe(pipe)
            >>> inpaint.denoiser is pipe.denoiser
            True
            >>> inpaint.default_num_inference_steps(None) == choice.num_inference_steps  # the fast steps
            True
        """
        keep_dtypes = "torch_dtype" not in kwargs and "dtype" not in kwargs
        dtypes = {
            name: module.dtype
            for name, module in pipeline.components.items()
            if isinstance(module, torch.nn.Module) and getattr(module, "dtype", torch.uint8).is_floating_point
        }
        with quiet_dtype_cast():  # diffusers' empty "kept in float32: []" warning of these casts
            new = super().from_pipe(pipeline, **kwargs)
            if keep_dtypes:
                for name, dtype in dtypes.items():
                    if name in new.components:  # not, e.g., a CLIP pipeline's clip_model in a SinDDMPipeline
                        new.components[name].to(dtype)
        new._fast_num_inference_steps = getattr(pipeline, "_fast_num_inference_steps", None)
        return new

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

    def check_tileable(self, tileable: bool) -> None:
        """``tileable`` must be a bool."""
        if not isinstance(tileable, bool):
            raise ValueError(f"tileable must be True or False, got {tileable!r}.")

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

    def plan(
        self,
        height_scale: float = 1.0,
        width_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
    ) -> list[Stage]:
        """The generation stages (model scale and (height, width)) for these size arguments; see `__call__`."""
        config = self.scheduler.config
        return plan_stages(config.scale_sizes, config.scale_factor, height_scale, width_scale, height, width)

    def default_num_inference_steps(
        self, num_inference_steps: int | Sequence[int] | None
    ) -> int | Sequence[int] | None:
        """``num_inference_steps`` as given, or when ``None`` the denoiser's own default: a training-free denoiser's
        ``config.num_inference_steps``, the fast steps after `enable_fast_sampling`; ``None`` (every step, the exact
        reference) for a trained model."""
        if num_inference_steps is not None:
            return num_inference_steps
        if self._fast_num_inference_steps is not None:  # set by enable_fast_sampling
            return self._fast_num_inference_steps
        return getattr(self.denoiser.config, "num_inference_steps", None)

    def check_num_inference_steps(self, num_inference_steps: int | Sequence[int] | None) -> list[int | None]:
        """``num_inference_steps`` of `__call__` as one entry per model scale (``None``: every step of that scale).

        Raises:
            ValueError: for anything but ``None``, an int >= 2 or one such int per scale (coarsest first).
        """
        num_scales = self.scheduler.num_scales
        if num_inference_steps is None:
            return [None] * num_scales
        error = ValueError(
            f"num_inference_steps must be an int >= 2, a list of {num_scales} such ints (one per scale, coarsest "
            f"first) or None (exact), got {num_inference_steps!r}."
        )
        if isinstance(num_inference_steps, int):
            counts = [num_inference_steps] * num_scales
        elif isinstance(num_inference_steps, Sequence) and not isinstance(num_inference_steps, str):
            counts = list(num_inference_steps)
        else:
            raise error
        if len(counts) != num_scales or any(isinstance(c, bool) or not isinstance(c, int) or c < 2 for c in counts):
            raise error
        return counts

    def inference_steps(self, num_inference_steps: int | Sequence[int] | None) -> list[int | None]:
        """A call's ``num_inference_steps`` as one checked entry per model scale, its default applied
        (`default_num_inference_steps`, then `check_num_inference_steps`)."""
        return self.check_num_inference_steps(self.default_num_inference_steps(num_inference_steps))

    def num_steps(self, stages: list[Stage], num_inference_steps: int | Sequence[int] | None = None) -> int:
        """Total denoising steps of a generation over these stages (at most ``num_inference_steps`` per stage)."""
        return self.count_steps(stages, self.check_num_inference_steps(num_inference_steps))

    def count_steps(self, stages: Sequence[Stage], steps: Sequence[int | None]) -> int:
        """Total denoising steps over these stages for per-scale ``steps`` (from `inference_steps`)."""
        total = 0
        for stage in stages:
            start, count = self.scheduler.start_timesteps[stage.scale], steps[stage.scale]
            total += start if count is None else min(start, count)
        return total

    @contextlib.contextmanager
    def denoising(
        self,
        total: int,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ):
        """The block of a call's denoising: `num_timesteps` is ``total``, every step ends with the step callback
        (`step_callback`), and the block gets a progress bar of ``total`` steps to update."""
        self._num_timesteps = total
        with self.step_callback(callback_on_step_end, callback_on_step_end_tensor_inputs), self.progress_bar(
            total=total
        ) as progress_bar:
            yield progress_bar

    def generate_stages(
        self,
        sample: torch.Tensor,
        stages: Sequence[Stage],
        steps: Sequence[int | None],
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        *,
        total: int | None = None,
        **options,
    ) -> torch.Tensor:
        """`denoise_stages` as a call's whole denoising (`denoising`): per-scale ``steps`` (from `inference_steps`),
        ``options`` as `denoise_stages` takes them, ``total`` the steps it makes (default: `count_steps`)."""
        total = self.count_steps(stages, steps) if total is None else total
        with self.denoising(total, callback_on_step_end, callback_on_step_end_tensor_inputs) as progress_bar:
            return self.denoise_stages(sample, stages, num_inference_steps=steps, progress_bar=progress_bar, **options)

    def finish(self, sample: torch.Tensor, output_type: str):
        """The images of a call from its final [-1, 1] sample; frees the offload hooks."""
        images = postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        return images

    def image_output(self, sample: torch.Tensor, output_type: str, return_dict: bool) -> ImagePipelineOutput | tuple:
        """A call's return value from its final [-1, 1] sample: an [`ImagePipelineOutput`], or ``(images,)``."""
        images = self.finish(sample, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

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

    def noised(
        self, image: torch.Tensor, timestep: int, generator: Generator, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``image`` noised to ``timestep`` (the forward process), the noise drawn from ``generator`` (or ``noise``)."""
        if noise is None:
            noise = randn_tensor(image.shape, generator=generator, device=image.device, dtype=image.dtype)
        return self.scheduler.add_noise(image, noise, timestep)

    def renoise(
        self,
        previous: torch.Tensor,
        stage: Stage,
        generator: Generator,
        start_timestep: int | None = None,
        wrap: bool = False,
        noise: StepNoise | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The start of ``stage`` from the finished coarser ``previous``: (noised sample, blurry image).

        The blurry image is ``previous`` up-sampled (bilinear) to the stage's size, wrapping around the borders
        when ``wrap`` (`wrap_interpolate`, for tileable output); the sample is it noised to the stage's start
        timestep (t_i, or ``start_timestep``), with ``noise(start)`` when a [`StepNoise`] provider is given."""
        if wrap:
            blurry = wrap_interpolate(previous, stage.size)
        else:
            blurry = F.interpolate(previous, size=stage.size, mode="bilinear", align_corners=False)
        start = self.scheduler.start_timesteps[stage.scale] if start_timestep is None else start_timestep
        return self.noised(blurry, start, generator, None if noise is None else noise(start)), blurry

    @contextlib.contextmanager
    def wrap_around(self, tileable: bool = True):
        """Within this block (when ``tileable``) the denoiser sees its input as a torus: its padding wraps around
        (the denoiser's ``circular_padding()``: circular convolutions of [`SinDDMModel`], wrapped query patches of
        [`SinDDMPatchDenoiser`]), so what it predicts at one border continues at the opposite one. CUDA graphs,
        captured with zero padding, are bypassed meanwhile. ``tileable=False``: nothing changes.

        Raises:
            ValueError: when ``tileable`` and the denoiser has no ``circular_padding()``.
        """
        if not tileable:
            yield
            return
        circular = getattr(self.denoiser, "circular_padding", None)
        if circular is None:
            raise ValueError(
                f"tileable=True needs a denoiser with circular_padding() (SinDDMModel, SinDDMPatchDenoiser); "
                f"{type(self.denoiser).__name__} has none."
            )
        runner, self._cuda_graph_denoiser = self._cuda_graph_denoiser, None
        try:
            with circular():
                yield
        finally:
            self._cuda_graph_denoiser = runner

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
        variance_noise: StepNoise | None = None,
        tileable: bool = False,
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
            variance_noise: a [`StepNoise`] provider: the DDPM noise of each step that draws noise, instead of a
                draw from ``generator``.
            tileable: the denoiser sees the sample as a torus (`wrap_around`).
            progress_bar: updated once per step.
        """
        self.scheduler.set_timesteps(
            num_inference_steps=num_inference_steps, device=sample.device, scale=scale, start_timestep=start_timestep
        )
        draws_noise = scale == 0 or not (self.scheduler.config.reblurring if reblurring is None else reblurring)
        with self.wrap_around(tileable):
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
                        blurry_sample=(
                            blurry if guided is None or guided.blurry_sample is None else guided.blurry_sample
                        ),
                        pred_original_sample=None if guided is None else guided.pred_original_sample,
                        reblurring=reblurring,
                        generator=generator,
                        variance_noise=(
                            variance_noise(t) if variance_noise is not None and draws_noise and t > 0 else None
                        ),
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
        noise: Callable[[int, Stage], StepNoise | None] | None = None,
        tileable: bool = False,
        start_timestep: int | None = None,
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
            noise: ``noise(index, stage)`` gives the [`StepNoise`] provider of a stage: its start noise (stages
                after the first) and its DDPM steps' noise (or ``None``: drawn from ``generator``).
            tileable: seamless output: the denoiser sees every stage as a torus and the up-sampling between stages
                wraps around (`wrap_around`, `wrap_interpolate`); the start ``sample`` should tile too (noise does).
            start_timestep: the start timestep of every stage (``sample`` is noised to it; ``None``: each stage's
                scale's t_i, T at scale 0).
            progress_bar: updated once per step.
        """
        for index, stage in enumerate(stages):
            if self.interrupt:
                break
            stage_noise = None if noise is None else noise(index, stage)
            if index > 0:
                sample, blurry = self.renoise(sample, stage, generator, start_timestep, tileable, stage_noise)
            sample = self.denoise_stage(
                sample,
                stage.scale,
                blurry=blurry,
                generator=generator,
                num_inference_steps=None if num_inference_steps is None else num_inference_steps[stage.scale],
                start_timestep=start_timestep,
                reblurring=reblurring,
                guidance=None if guidance is None else guidance(index, stage),
                resample_steps=resample_steps,
                variance_noise=stage_noise,
                tileable=tileable,
                progress_bar=progress_bar,
            )
        return sample
