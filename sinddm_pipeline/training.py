"""Pieces of SinDDM training (SPEC §4) shared by `train_sinddm.py` and the app: data, loss, EMA.

Example:
    >>> import torch
    >>> from PIL import Image
    >>> from sinddm_pipeline import SinDDMModel, SinDDMScheduler
    >>> from sinddm_pipeline.pyramid import build_pyramid
    >>> from sinddm_pipeline.training import TrainingData, training_loss
    >>> pyramid = build_pyramid(Image.new("RGB", (96, 72), "blue"))
    >>> data = TrainingData.from_pyramid(pyramid)
    >>> model, scheduler = SinDDMModel(dim=8), SinDDMScheduler.from_pyramid(pyramid)
    >>> x, blurry = data.batch(scale=1, batch_size=2)
    >>> loss = training_loss(model, scheduler, x, blurry, scale=1)
    >>> loss.shape
    torch.Size([])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .pyramid import Pyramid, pil_to_tensor
from .scheduling_sinddm import SinDDMScheduler


@dataclass
class TrainingData:
    """The training image at every scale, and its blurry versions, as (1, 3, H, W) tensors in [-1, 1]."""

    images: list[torch.Tensor]
    blurry: list[torch.Tensor | None]

    @classmethod
    def from_pyramid(cls, pyramid: Pyramid, device: torch.device | str = "cpu") -> TrainingData:
        images = [pil_to_tensor(image).to(device) for image in pyramid.images]
        blurry = [None if image is None else pil_to_tensor(image).to(device) for image in pyramid.blurry]
        return cls(images=images, blurry=blurry)

    @property
    def num_scales(self) -> int:
        return len(self.images)

    def batch(
        self, scale: int, batch_size: int, crop_size: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``batch_size`` copies of scale ``scale`` and of its blurry version (``None`` at scale 0).

        With ``crop_size``, each copy is a random ``crop_size`` square (the same window in the blurry image) of
        scales larger than that: a speed-up for fine scales, where the denoiser's ~35 px receptive field sees
        only local context anyway. ``None`` (the reference recipe) uses whole images.
        """
        image, blurry = self.images[scale], self.blurry[scale]
        height, width = image.shape[-2:]
        if crop_size is None or (height <= crop_size and width <= crop_size):
            x = image.expand(batch_size, -1, -1, -1)
            return x, None if blurry is None else blurry.expand(batch_size, -1, -1, -1)
        ch, cw = min(crop_size, height), min(crop_size, width)
        device = "cpu" if generator is None else generator.device
        tops = torch.randint(0, height - ch + 1, (batch_size,), generator=generator, device=device).tolist()
        lefts = torch.randint(0, width - cw + 1, (batch_size,), generator=generator, device=device).tolist()

        def crops(source: torch.Tensor) -> torch.Tensor:
            return torch.cat([source[..., t : t + ch, s : s + cw] for t, s in zip(tops, lefts, strict=True)])

        return crops(image), None if blurry is None else crops(blurry)


def training_loss(
    denoiser: nn.Module,
    scheduler: SinDDMScheduler,
    x: torch.Tensor,
    blurry: torch.Tensor | None,
    scale: int,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean |eps - denoiser(x_t, t, scale)| with t uniform in [0, T) and x_t the blur-mixed, noised image."""
    batch = x.shape[0]
    # drawn where the generator lives (the CPU by default, as the reference does), then moved to the batch
    device = "cpu" if generator is None else generator.device
    if timesteps is None:
        timesteps = torch.randint(0, len(scheduler), (batch,), generator=generator, device=device).to(x.device)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    noisy = scheduler.training_input(x, blurry, noise, timesteps, scale)
    prediction = denoiser(noisy, timesteps, scale).sample
    return (noise - prediction.to(noise.dtype)).abs().mean()


class EMA:
    """Exponential moving average of a model's weights, with the reference's schedule.

    Every ``update_every`` steps: before ``start_step`` the average is a copy of the model, from then on
    ``average = decay·average + (1 - decay)·model``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995, start_step: int = 2000, update_every: int = 10):
        if not 0 <= decay <= 1:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}.")
        self.decay, self.start_step, self.update_every = decay, start_step, update_every
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def step(self, model: nn.Module, global_step: int) -> None:
        """Call once per optimizer step with the step count before it (0-based), as the reference does."""
        if global_step % self.update_every:
            return
        if global_step < self.start_step:
            self.model.load_state_dict(model.state_dict())
            return
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.mul_(self.decay).add_(current.detach(), alpha=1 - self.decay)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
