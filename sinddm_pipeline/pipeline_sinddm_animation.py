"""SinDDMAnimationPipeline: a short looping clip from a smooth closed walk in the noise of the coarse scales
(SinGAN-style animation).

Every noise draw of the coarse scales (``animated_scales`` of them, 2 by default, as SinGAN's animation: the start
noise of each scale and the noise of each DDPM step) follows a closed loop in noise space: for frame i of N, with
theta_i = 2·pi·i / N and a, b, c fixed standard normal draws (one triple per draw),

    z_i = (a + r·(cos(theta_i)·b + sin(theta_i)·c)) / sqrt(1 + r^2).

Each z_i is exactly standard normal (so every frame is a sample of the model), neighbouring frames differ little
(their correlation is (1 + r^2·cos(2·pi/N)) / (1 + r^2)), and z_N = z_0, so the last frame leads back to the
first. The variation r sets how far the walk strays from a. The finer scales' noise is the same for every frame,
so the fine detail moves with the layout instead of flickering.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .animation_export import export_animation
from .limits import MAX_CALL_PIXELS, check_count, check_output_size
from .pipeline_sinddm_base import SinDDMPipelineBase, StepNoise
from .retargeting import Stage

__all__ = ["MAX_FRAMES", "SinDDMAnimationPipeline", "SinDDMAnimationPipelineOutput", "export_animation", "noise_loop"]

MAX_FRAMES = 240
"""Frames of one animation at most (10 s at 24 fps)."""
FRAME_BATCH_PIXELS = 1 << 20
"""Pixels denoised in one batch at most (frames are denoised together up to this: ~20 frames of 50,000 px)."""


@dataclass
class SinDDMAnimationPipelineOutput(BaseOutput):
    """Output of [`SinDDMAnimationPipeline`].

    Args:
        frames (list of `PIL.Image.Image`, `np.ndarray` (N, H, W, 3) or `torch.Tensor` (N, 3, H, W), in [0, 1]):
            the frames of the loop, in order; the last leads back to the first.
    """

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor


def noise_loop(basis: torch.Tensor, frames: Sequence[int] | torch.Tensor, num_frames: int, variation: float):
    """The loop's noise of ``frames`` (indices in [0, num_frames)): (a + r·(cos(θ)·b + sin(θ)·c)) / sqrt(1 + r²)
    with θ = 2π·i / num_frames and ``basis`` = (a, b, c) stacked on the first dimension; one row per frame.

    Example:
        >>> import torch
        >>> basis = torch.randn(3, 100_000, generator=torch.Generator().manual_seed(0))
        >>> z = noise_loop(basis, range(8), 8, variation=0.5)
        >>> z.shape, round(z.std().item(), 2)  # every frame's noise is standard normal
        (torch.Size([8, 100000]), 1.0)
        >>> bool(torch.allclose(noise_loop(basis, [8], 8, 0.5), z[:1], atol=1e-5))  # frame N is frame 0
        True
    """
    index = torch.as_tensor(frames, dtype=torch.float64)
    theta = 2 * math.pi * index / num_frames
    shape = (-1,) + (1,) * (basis.ndim - 1)
    cos = torch.cos(theta).to(device=basis.device, dtype=basis.dtype).reshape(shape)
    sin = torch.sin(theta).to(device=basis.device, dtype=basis.dtype).reshape(shape)
    a, b, c = basis[0:1], basis[1:2], basis[2:3]
    return (a + variation * (cos * b + sin * c)) / math.sqrt(1 + variation**2)


def check_animation_inputs(num_frames: int, variation: float) -> None:
    """``num_frames`` an int in [2, `MAX_FRAMES`], ``variation`` a finite number > 0.

    Example:
        >>> check_animation_inputs(0, 0.5)
        Traceback (most recent call last):
            ...
        ValueError: num_frames must be an int in [2, 240], got 0.
    """
    check_count("num_frames", num_frames, 2, MAX_FRAMES)
    if (
        isinstance(variation, bool)
        or not isinstance(variation, (int, float))
        or not math.isfinite(variation)
        or variation <= 0
    ):
        raise ValueError(
            f"variation must be a finite number > 0 (the radius of the loop in noise space; 0.5 by default), "
            f"got {variation!r}."
        )


class SinDDMAnimationPipeline(SinDDMPipelineBase):
    r"""A short looping animation of samples of a SinDDM model, SinGAN-style: a smooth closed walk in the noise of
    the coarse scales (see the module docstring), the finer scales' noise held fixed.

    Works with a trained model (`from_pretrained`) and with a training-free pipeline
    (``SinDDMAnimationPipeline.from_pipe(SinDDMPipeline.from_image(image))``); it shares the components of
    [`SinDDMPipeline`]. Write the frames with [`export_animation`] (GIF; MP4 with imageio-ffmpeg).

    Components: those of [`SinDDMPipeline`] (``denoiser``, trained or training-free; ``scheduler``; ``pyramid``).

    Example:
        ```py
        >>> import tempfile
        >>> import torch
        >>> from pathlib import Path
        >>> from skimage import data
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.pipeline_sinddm_animation import SinDDMAnimationPipeline, export_animation
        >>> pipe = SinDDMPipeline.from_image(data.coffee(), max_pixels=6000)  # training-free, small and fast
        >>> animation = SinDDMAnimationPipeline.from_pipe(pipe)
        >>> animation.set_progress_bar_config(disable=True)
        >>> frames = animation(num_frames=4, num_inference_steps=[10, 3], generator=torch.Generator().manual_seed(0))
        >>> len(frames.frames), frames.frames[0].size
        (4, (94, 63))
        >>> path = export_animation(frames.frames, Path(tempfile.mkdtemp()) / "coffee.gif", fps=8)  # loops forever
        ```
    """

    def loop_noise(
        self,
        stage: Stage,
        num_frames: int,
        variation: float,
        generator: torch.Generator,
        num_inference_steps: int | None = None,
    ) -> Callable[[Sequence[int]], StepNoise]:
        """The noise loops of one stage: a function giving, for some frames (indices), the [`StepNoise`] provider
        of their noise at this stage (see `noise_loop`).

        One loop basis (a, b, c) per noise draw of the stage: its start (at its start timestep) and every DDPM step
        that draws noise (at most ``num_inference_steps`` steps), drawn from ``generator`` in that order."""
        reblurring = self.scheduler.config.reblurring
        self.scheduler.set_timesteps(num_inference_steps, scale=stage.scale)
        draws = [t for t in self.scheduler.timesteps.tolist() if t > 0] if stage.scale == 0 or not reblurring else []
        draws.insert(0, self.scheduler.start_timesteps[stage.scale])
        shape = (3, len(draws), 3, *stage.size)
        basis = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.sample_dtype)
        position = {t: k for k, t in enumerate(draws)}

        def frames_noise(frames: Sequence[int]) -> StepNoise:
            return lambda t: noise_loop(basis[:, position[t]], frames, num_frames, variation)

        return frames_noise

    @torch.no_grad()
    def __call__(
        self,
        num_frames: int = 16,
        variation: float = 0.5,
        animated_scales: int = 2,
        generator: torch.Generator | None = None,
        height_scale: float = 1.0,
        width_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | Sequence[int] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        tileable: bool = False,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> SinDDMAnimationPipelineOutput | tuple:
        r"""Make the frames of a looping animation.

        Args:
            num_frames (`int`, defaults to 16): frames of the loop, an int in [2, 240].
            variation (`float`, defaults to 0.5): r, the radius of the loop in noise space, a finite number > 0:
                how much the frames differ from one another (about 0.2: a gentle shimmer; 1: the layout wanders;
                large: frames as different as independent samples, yet still in a smooth loop).
            animated_scales (`int`, defaults to 2): how many of the coarsest scales walk their noise (an int in
                [1, number of scales]); the finer ones keep one noise for every frame. 1 moves the coarsest layout
                only (on a model whose content is fine detail, such as the shipped hubble one, frames then differ
                by ~0.01% of the range); more scales move finer content too. SinGAN's animation walks 2.
            generator (`torch.Generator`, *optional*): makes the animation deterministic.
            height_scale, width_scale, height, width: the frame size, as [`SinDDMPipeline`] takes them.
            num_inference_steps (`int` or list of `int`, *optional*): as [`SinDDMPipeline`] takes them (``None``:
                exact for a trained model; the denoiser's own or the fast-sampling steps when set).
            output_type (`str`, defaults to `"pil"`): `"pil"` (a list of frames), `"np"` ((N, H, W, 3) in [0, 1]) or
                `"pt"` ((N, 3, H, W) in [0, 1]).
            return_dict (`bool`, defaults to `True`): return a [`SinDDMAnimationPipelineOutput`], else a tuple.
            tileable (`bool`, defaults to `False`): every frame tiles without seams (see [`SinDDMPipeline`]).
            callback_on_step_end (`Callable`, *optional*): diffusers' step callback, called after every denoising
                step (frames are denoised in batches) as ``callback_on_step_end(pipe, step_index, timestep,
                {"sample": sample})``; a returned ``{"sample": ...}`` replaces the sample.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): the names passed (default ``["sample"]``).

        Returns:
            [`SinDDMAnimationPipelineOutput`] or `tuple`: the frames.

        Raises:
            ValueError: for ``num_frames`` outside [2, 240], ``variation`` not a finite number > 0, frames too
                large (each within 4096 x 4096 px, all of them within 67,108,864 px) or other bad arguments.

        Example:
            ```py
            >>> import torch
            >>> from sinddm_pipeline.pipeline_sinddm_animation import SinDDMAnimationPipeline
            >>> pipe = SinDDMAnimationPipeline.from_pretrained("models/hubble-sinddm")
            >>> pipe.set_progress_bar_config(disable=True)
            >>> choice = pipe.enable_fast_sampling()  # optional: ~10x faster
            >>> generator = torch.Generator().manual_seed(0)
            >>> frames = pipe(num_frames=4, height_scale=0.5, width_scale=0.5, generator=generator).frames
            >>> len(frames), frames[0].size
            (4, (119, 104))
            ```
        """
        check_animation_inputs(num_frames, variation)
        check_count("animated_scales", animated_scales, 1, self.scheduler.num_scales)
        self.check_call_inputs(1, output_type, generator)
        self.check_tileable(tileable)
        if isinstance(generator, (list, tuple)):
            generator = generator[0]
        steps = self.inference_steps(num_inference_steps)
        stages = self.plan(height_scale, width_scale, height, width)
        frame_height, frame_width = stages[-1].size
        check_output_size(1, frame_height, frame_width)
        if num_frames * frame_height * frame_width > MAX_CALL_PIXELS:
            raise ValueError(
                f"num_frames {num_frames} x {frame_width}x{frame_height} px = "
                f"{num_frames * frame_height * frame_width:,} pixels; at most {MAX_CALL_PIXELS:,} are allowed in "
                f"one animation: at most {MAX_CALL_PIXELS // (frame_height * frame_width)} frames at this size."
            )

        # two seeds from the user's generator: the loop bases and the fixed noise of the finer scales
        seeds = torch.randint(0, 2**62, (2,), generator=generator, device=getattr(generator, "device", "cpu"))
        loop_seed, detail_seed = (int(seed) for seed in seeds.tolist())
        loops = torch.Generator().manual_seed(loop_seed)
        walks = [
            self.loop_noise(stage, num_frames, variation, loops, steps[stage.scale])
            for stage in stages[:animated_scales]
        ]

        per_batch = max(1, min(num_frames, FRAME_BATCH_PIXELS // (frame_height * frame_width)))
        batches = [list(range(first, min(first + per_batch, num_frames))) for first in range(0, num_frames, per_batch)]
        total = self.count_steps(stages, steps) * len(batches)
        samples = []
        with self.denoising(total, callback_on_step_end, callback_on_step_end_tensor_inputs) as progress_bar:
            for frames in batches:
                if self.interrupt:
                    break
                noise = [walk(frames) for walk in walks]
                start = noise[0](self.scheduler.start_timesteps[stages[0].scale])
                # one generator per frame, all with one seed: every frame gets the same noise at the finer scales
                details = [torch.Generator().manual_seed(detail_seed) for _ in frames]
                samples.append(
                    self.denoise_stages(
                        start,
                        stages,
                        generator=details,
                        num_inference_steps=steps,
                        noise=lambda index, stage, noise=noise: noise[index] if index < len(noise) else None,
                        tileable=tileable,
                        progress_bar=progress_bar,
                    )
                )

        # stopped early (callback_on_step_end): the frames of the batches that had finished, or the one stopped
        samples = [sample for sample in samples if sample.shape[-2:] == samples[0].shape[-2:]]
        frames = self.finish(torch.cat(samples), output_type)
        if not return_dict:
            return (frames,)
        return SinDDMAnimationPipelineOutput(frames=frames)
