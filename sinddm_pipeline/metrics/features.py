"""ImageNet backbones in plain torch (no torchvision): AlexNet and VGG16 feature taps, the InceptionV3 stem.

Parameter names follow torchvision's models (``features.0.weight``, ``Conv2d_1a_3x3.conv.weight``, ...), so
torchvision or pytorch-fid state dicts load as they are. Every module returns the feature maps of the taps it
was built with, in order, and stops at the last one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# LPIPS' ScalingLayer: ImageNet mean and std expressed for inputs in [-1, 1] (shift = 2 * mean - 1, scale = 2 * std).
IMAGENET_SHIFT = (-0.030, -0.088, -0.188)
IMAGENET_SCALE = (0.458, 0.448, 0.450)

ALEXNET_TAPS = {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11}
VGG16_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # indices of the 13 convolutions in `features`


class ImageNetNormalize(nn.Module):
    """[0, 1] images to the ImageNet-normalised input of AlexNet and VGG16 (LPIPS' ScalingLayer on ``2x - 1``)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(IMAGENET_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(IMAGENET_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images * 2 - 1 - self.shift) / self.scale


class _Tapped(nn.Module):
    """A ``features`` Sequential that returns the outputs of some of its layers."""

    taps_by_name: dict[str, int] = {}

    def __init__(self, layers: list[nn.Module], taps: Sequence[str] | None):
        super().__init__()
        names = list(self.taps_by_name) if taps is None else list(taps)
        unknown = [name for name in names if name not in self.taps_by_name]
        if unknown or not names:
            raise ValueError(f"Unknown or no feature taps {unknown or names}; choose from {list(self.taps_by_name)}.")
        self.taps = names
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    @property
    def channels(self) -> list[int]:
        """The number of channels of every tap, in order."""
        result = []
        for name in self.taps:
            convs = [layer for layer in self.features[: self.taps_by_name[name] + 1] if isinstance(layer, nn.Conv2d)]
            result.append(convs[-1].out_channels)
        return result

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """ImageNet-normalised (N, 3, H, W) images to the feature map of every tap (see `ImageNetNormalize`)."""
        wanted = {self.taps_by_name[name]: name for name in self.taps}
        outputs, x = {}, images
        for index, layer in enumerate(self.features[: max(wanted) + 1]):
            x = layer(x)
            if index in wanted:
                outputs[wanted[index]] = x
        return [outputs[name] for name in self.taps]


class AlexNetFeatures(_Tapped):
    """AlexNet's convolutions (torchvision layout) with LPIPS' taps: the five ReLU outputs.

    >>> net = AlexNetFeatures()
    >>> [tuple(f.shape[1:]) for f in net(torch.zeros(1, 3, 64, 64))]
    [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]
    """

    taps_by_name = ALEXNET_TAPS

    def __init__(self, taps: Sequence[str] | None = None):
        layers = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        ]
        super().__init__(layers, taps)


class VGG16Features(_Tapped):
    """VGG16's convolutions (torchvision layout); taps ``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``,
    ``relu5_3`` (LPIPS' five), all by default.

    >>> net = VGG16Features(taps=["relu3_3"])
    >>> [tuple(f.shape[1:]) for f in net(torch.zeros(1, 3, 48, 64))], net.channels
    ([(256, 12, 16)], [256])
    """

    taps_by_name = VGG16_TAPS

    def __init__(self, taps: Sequence[str] | None = None):
        layers: list[nn.Module] = []
        channels = 3
        for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
            if width == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
        super().__init__(layers, taps)


class BasicConv2d(nn.Module):
    """Inception's conv (no bias) + batch norm (eps 0.001) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class InceptionV3Features(nn.Module):
    """InceptionV3 up to SIFID's layer (SinGAN's ``dims=192``): the 192-channel output of ``Conv2d_4a_3x3``,
    before the second max-pool. Inputs in [0, 1] are mapped to [-1, 1] and not resized, as in SinGAN's code.

    >>> net = InceptionV3Features()
    >>> tuple(net(torch.zeros(1, 3, 64, 64)).shape)
    (1, 192, 12, 12)
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] to (N, 192, H', W') features."""
        x = images * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        return self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
