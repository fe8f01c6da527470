"""SinDDMPipeline: random generation and retargeting, coarse to fine (SPEC §5)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel
from .retargeting import Stage, plan_stages
from .scheduling_sinddm import SinDDMScheduler

OUTPUT_TYPES = ("pil", "np", "pt")


def postprocess(images: torch.Tensor, output_type: str) -> list[Image.Image] | np.ndarray | torch.Tensor:
    """[-1, 1] NCHW tensors to "pt" ([0, 1] NCHW), "np" ([0, 1] NHWC float32) or "pil" images."""
    images = (images / 2 + 0.5).clamp(0, 1)
    if output_type == "pt":
        return images
    array = images.float().cpu().permute(0, 2, 3, 1).numpy()
    if output_type == "np":
        return array
    return DiffusionPipeline.numpy_to_pil(array)


class SinDDMPipeline(DiffusionPipeline):
    r"""Generate images like the single training image of a SinDDM model, at its size or any other.

    Components:
        denoiser ([`SinDDMModel`]): the noise predictor.
        scheduler ([`SinDDMScheduler`]): the multi-scale blur + noise process; its config holds the scale sizes.
        pyramid ([`SinDDMPyramid`]): the training image at every scale (used by image-guided tasks).
    """

    model_cpu_offload_seq = "denoiser"

    def __init__(self, denoiser: SinDDMModel, scheduler: SinDDMScheduler, pyramid: SinDDMPyramid):
        super().__init__()
        if pyramid.config.scale_sizes != scheduler.config.scale_sizes:
            raise ValueError(
                "The pyramid and the scheduler describe different scales: "
                f"{pyramid.config.scale_sizes} vs {scheduler.config.scale_sizes}."
            )
        self.register_modules(denoiser=denoiser, scheduler=scheduler, pyramid=pyramid)

    def check_inputs(self, batch_size: int, output_type: str) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")

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

    def denoise_stage(
        self,
        sample: torch.Tensor,
        stage: Stage,
        blurry: torch.Tensor | None,
        generator: torch.Generator | list[torch.Generator] | None,
        progress_bar=None,
    ) -> torch.Tensor:
        """Run the denoising loop of one stage on ``sample`` (already noised to the stage's start timestep)."""
        self.scheduler.set_timesteps(scale=stage.scale, device=sample.device)
        for t in self.scheduler.timesteps:
            noise_pred = self.denoiser(sample, t, stage.scale).sample
            sample = self.scheduler.step(
                noise_pred, t, sample, scale=stage.scale, blurry_sample=blurry, generator=generator
            ).prev_sample
            if progress_bar is not None:
                progress_bar.update()
        return sample

    def num_steps(self, stages: list[Stage]) -> int:
        """Total denoising steps of a generation over these stages."""
        starts = self.scheduler.start_timesteps
        return sum(starts[stage.scale] for stage in stages)

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

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the generated images.

        Example:
            ```py
            >>> from sinddm_pipeline import SinDDMPipeline
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble")  # a folder or a Hub repo id
            >>> generator = torch.Generator().manual_seed(0)
            >>> image = pipe(generator=generator).images[0]                    # like the training image
            >>> wide = pipe(width_scale=2.0, generator=generator).images[0]   # retargeted: twice as wide
            >>> large = pipe(height=2 * image.height, width=2 * image.width).images[0]  # 2x, extra scales
            ```
        """
        self.check_inputs(batch_size, output_type)
        stages = self.plan(height_scale, width_scale, height, width)
        device = self._execution_device
        dtype = self.denoiser.dtype

        sample = randn_tensor((batch_size, 3, *stages[0].size), generator=generator, device=device, dtype=dtype)
        with self.progress_bar(total=self.num_steps(stages)) as progress_bar:
            sample = self.denoise_stage(sample, stages[0], None, generator, progress_bar)
            for stage in stages[1:]:
                blurry = F.interpolate(sample, size=stage.size, mode="bilinear", align_corners=False)
                noise = randn_tensor(blurry.shape, generator=generator, device=device, dtype=dtype)
                sample = self.scheduler.add_noise(blurry, noise, self.scheduler.start_timesteps[stage.scale])
                sample = self.denoise_stage(sample, stage, blurry, generator, progress_bar)

        images = postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
