"""SinDDMModel: the fully-convolutional noise predictor of SinDDM (SPEC §3)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .limits import MAX_MODEL_DIM, check_count


@dataclass
class SinDDMModelOutput(BaseOutput):
    """Output of [`SinDDMModel`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, height, width)`): the predicted noise.
    """

    sample: torch.Tensor


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(x·f_k), cos(x·f_k)] with f_k = exp(-k·ln(10000)/(dim/2 - 1)), k < dim/2. ``values``: shape (B,)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=values.device) * -(math.log(10000) / (half - 1)))
    args = values[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


class SinDDMConvBlock(nn.Module):
    """depthwise 5x5 conv + projected condition -> 3x3 conv -> GELU -> 3x3 conv, plus a residual."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.cond_mlp = nn.Sequential(nn.GELU(), nn.Linear(cond_dim, cond_dim))
        self.cond_proj = nn.Conv2d(cond_dim, in_channels, 1)
        self.depthwise_conv = nn.Conv2d(in_channels, in_channels, 5, padding=2, groups=in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.residual_conv = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        condition = self.cond_proj(self.cond_mlp(cond)[:, :, None, None])
        h = self.depthwise_conv(x) + condition
        h = self.conv2(self.act(self.conv1(h)))
        return h + self.residual_conv(x)


class SinDDMModel(ModelMixin, ConfigMixin):
    r"""The SinDDM denoiser: predicts the noise in a noisy image given the timestep and the scale index.

    Fully convolutional with no down-sampling, so it runs on images of any size; its receptive field is about
    35 px. About 1.1 M parameters at ``dim=160``.

    Args:
        in_channels (`int`, defaults to 3): channels of the input image.
        out_channels (`int`, defaults to 3): channels of the predicted noise.
        dim (`int`, defaults to 160): the widest channel count (blocks go 3 -> dim/2 -> dim -> dim -> dim/2).
        embedding_dim (`int`, defaults to 32): size of each sinusoidal embedding (timestep and scale) and of the
            condition vector.

    Example:
        ```py
        >>> import torch
        >>> from sinddm_pipeline import SinDDMModel
        >>> model = SinDDMModel(dim=16)
        >>> noise = model(torch.randn(2, 3, 40, 56), timestep=10, scale=1).sample
        >>> noise.shape
        torch.Size([2, 3, 40, 56])
        ```
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3, dim: int = 160, embedding_dim: int = 32):
        super().__init__()
        check_count("dim", dim, 2, MAX_MODEL_DIM)  # before any allocation: dim=100000 would take GBs
        if dim % 2:
            raise ValueError(f"dim must be an even number >= 2, got {dim}.")
        check_count("embedding_dim", embedding_dim, 1, MAX_MODEL_DIM)
        half = dim // 2
        self.cond_mlp = nn.Sequential(
            nn.Linear(2 * embedding_dim, 4 * embedding_dim), nn.GELU(), nn.Linear(4 * embedding_dim, embedding_dim)
        )
        channels = [in_channels, half, dim, dim, half]
        self.blocks = nn.ModuleList(
            SinDDMConvBlock(channels[i], channels[i + 1], embedding_dim) for i in range(len(channels) - 1)
        )
        self.conv_out = nn.Conv2d(half, out_channels, 1)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> SinDDMModel:
        """As [`~ModelMixin.from_pretrained`], with every weight copied into its own freshly allocated storage.

        Weights loaded from safetensors are views into one file buffer at arbitrary alignment, and on CPU the
        convolution kernels then take other code paths that differ in the last float bits; a reloaded model
        would not reproduce the saved one's images exactly. Own copies also release the file.
        """
        model = super().from_pretrained(*args, **kwargs)
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.data = tensor.data.clone()
        return model

    @contextlib.contextmanager
    def circular_padding(self) -> Iterator[SinDDMModel]:
        """Within this block every padded convolution pads circularly (``padding_mode="circular"``): the model sees
        its input as a torus, so its prediction has no borders and tiles without seams. The modes are restored on
        exit. The weights are the same; only the padding changes. (A ``torch.compile``-d model keeps the padding it
        was compiled with.)

        Example:
            >>> import torch
            >>> model = SinDDMModel(dim=8)
            >>> x = torch.randn(1, 3, 16, 16)
            >>> with model.circular_padding():
            ...     shifted = model(x.roll(5, dims=-1), 10, 0).sample
            ...     same = model(x, 10, 0).sample.roll(5, dims=-1)
            >>> bool(torch.allclose(shifted, same, atol=1e-5))  # a torus has no borders: shifts commute
            True
            >>> model.blocks[0].conv1.padding_mode  # restored
            'zeros'
        """
        convolutions = [m for m in self.modules() if isinstance(m, nn.Conv2d) and any(m.padding)]
        modes = [conv.padding_mode for conv in convolutions]
        for conv in convolutions:
            conv.padding_mode = "circular"
        try:
            yield self
        finally:
            for conv, mode in zip(convolutions, modes, strict=True):
                conv.padding_mode = mode

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        scale: torch.Tensor | int,
        return_dict: bool = True,
    ) -> SinDDMModelOutput | tuple[torch.Tensor]:
        """Predict the noise.

        Args:
            sample: noisy images, shape (batch, channels, height, width), any height and width.
            timestep: diffusion step, an int or a tensor of shape () or (batch,).
            scale: pyramid scale index (0 = coarsest), an int or a tensor of shape () or (batch,).
            return_dict: return a [`SinDDMModelOutput`] instead of a plain tuple.
        """
        batch, device = sample.shape[0], sample.device
        # Python numbers become device tensors with a fill kernel: torch.as_tensor would copy from host memory, which
        # synchronises a GPU at every denoising step.
        if isinstance(timestep, torch.Tensor):
            timesteps = timestep.to(device).reshape(-1).expand(batch)
        else:
            timesteps = torch.full((batch,), timestep, device=device)
        if isinstance(scale, torch.Tensor):
            scales = scale.to(device=device, dtype=torch.float32).reshape(-1).expand(batch)
        else:
            scales = torch.full((batch,), scale, device=device, dtype=torch.float32)
        dim = self.config.embedding_dim
        cond = torch.cat((sinusoidal_embedding(timesteps, dim), sinusoidal_embedding(scales, dim)), dim=1)
        cond = self.cond_mlp(cond.to(self.conv_out.weight.dtype))
        h = sample
        for block in self.blocks:
            h = block(h, cond)
        out = self.conv_out(h)
        if not return_dict:
            return (out,)
        return SinDDMModelOutput(sample=out)
