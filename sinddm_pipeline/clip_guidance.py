"""Text guidance with CLIP (SPEC §7): prompt templates, text and image embeddings, the loss, its gradient, the
gradient sparsification and the normalised update step.

Works with any transformers `CLIPModel` (``openai/clip-vit-base-patch32`` is the reference's ViT-B/32) and its
tokenizer. Images of any aspect ratio go through CLIP with interpolated positional embeddings
(``interpolate_pos_encoding=True``); "224 on the short side" of the reference means the model's configured input
size, ``clip_model.config.vision_config.image_size``.

The loss of one image against a prompt, as the reference (Text2LIVE's CLIP extractor) computes it:
``num_augmentations`` augmented views of the image are embedded by CLIP, a random subset (with repetition, of
random size) of the prompt's template embeddings is drawn, and the loss is the mean over that subset of
1.2 · (1 - the mean cosine similarity of the views with the text embedding). A batch's loss is the sum over its
images, so each image's gradient is its own.

Example:
    >>> import torch
    >>> from sinddm_pipeline.clip_guidance import normalized_step, thresholded_grad
    >>> grad = torch.zeros(1, 3, 4, 4)
    >>> grad[0, :, 0, 0] = 1.0  # one pixel with a strong gradient
    >>> grad[0, :, 1, 1] = 0.1
    >>> sparse, mask = thresholded_grad(grad, quantile=0.9)
    >>> int(mask.sum()), sparse[0, 0, 0, 0].item() > 0, sparse[0, 0, 1, 1].item()
    (1, True, 0.0)
    >>> image = torch.full((1, 3, 4, 4), 0.5)
    >>> stepped = normalized_step(image, sparse, strength=0.1, mask=mask.float())
    >>> (stepped - image).abs().sum().item() > 0, bool((stepped - image)[0, :, 1:, 1:].abs().max() == 0)
    (True, True)
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augmentations import augmented_views

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""OpenAI CLIP's normalisation mean (RGB), used when no image processor says otherwise."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP's normalisation standard deviation (RGB)."""
LOSS_SCALE = 1.2
"""The reference's cosine loss: 1.2 · (1 - cosine similarity)."""
MAX_SIZE_RATIO = 320 / 224
"""The long side of a CLIP view is at most this times CLIP's input size (the reference: 224 -> at most 320)."""

_BARE_TEMPLATES = ("the {}.", "a {}.", "{}.", "{}", "{}!", "{}...")
"""The last templates of both sets: the prompt nearly alone."""

FINE_TEMPLATES = (
    "photo of {}.",
    "high quality photo of {}.",
    "a photo of {}.",
    "the photo of {}.",
    "image of {}.",
    "an image of {}.",
    "high quality image of {}.",
    "a high quality image of {}.",
) + _BARE_TEMPLATES
"""Prompt templates for guidance at the scales > 0 (the reference's "hr" set)."""

COARSE_TEMPLATES = (
    "photo of {}.",
    "low quality photo of {}.",
    "low resolution photo of {}.",
    "low-res photo of {}.",
    "blurry photo of {}.",
    "pixelated photo of {}.",
    "a photo of {}.",
    "the photo of {}.",
    "image of {}.",
    "an image of {}.",
    "low quality image of {}.",
    "a low quality image of {}.",
    "low resolution image of {}.",
    "a low resolution image of {}.",
    "low-res image of {}.",
    "a low-res image of {}.",
    "blurry image of {}.",
    "a blurry image of {}.",
    "pixelated image of {}.",
    "a pixelated image of {}.",
) + _BARE_TEMPLATES
"""Prompt templates for guidance at the coarsest scale and for ROI text edits (the reference's "lr" set)."""


def compose_prompts(prompt: str, templates: Sequence[str]) -> list[str]:
    """The prompt put into every template.

    >>> compose_prompts("fire", ("a photo of {}.", "{}!"))
    ['a photo of fire.', 'fire!']
    """
    return [template.format(prompt) for template in templates]


def _features(output) -> torch.Tensor:
    """The projected embeddings from ``get_text_features``/``get_image_features``: a tensor in transformers 4, an
    output object with ``pooler_output`` in transformers 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.no_grad()
def encode_prompts(clip_model, tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """CLIP text embeddings (projected, not normalised) of ``prompts``, shape (len(prompts), projection_dim), float32.

    Args:
        clip_model: a transformers `CLIPModel`.
        tokenizer: its `CLIPTokenizer` (or any tokenizer returning ``input_ids`` and ``attention_mask``).
        prompts: the texts.
    """
    device = clip_model.device
    max_length = getattr(getattr(clip_model.config, "text_config", None), "max_position_embeddings", 77)
    tokens = tokenizer(list(prompts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    output = clip_model.get_text_features(
        input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
    )
    return _features(output).float()


def _takes_interpolate_pos_encoding(clip_model) -> bool:
    return "interpolate_pos_encoding" in inspect.signature(clip_model.get_image_features).parameters


def thresholded_grad(grad: torch.Tensor, quantile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the strongest gradients (SPEC §7; the reference's ``thresholded_grad``).

    The energy of a pixel is the L2 norm of its gradient over the channels; q is each image's ``quantile`` of the
    energies (``torch.quantile``, interpolation "nearest"). The mask holds the pixels with energy > q; the
    returned gradient is soft-thresholded: grad · max(0, energy - q) / energy (0 where the energy is 0).

    Args:
        grad: (N, C, H, W).
        quantile: in [0, 1]; 1 - fill_factor.

    Returns:
        (sparse gradient (N, C, H, W), mask (N, 1, H, W) bool).

    >>> sparse, mask = thresholded_grad(torch.arange(8.0).reshape(1, 2, 2, 2), quantile=0.25)
    >>> mask.flatten().tolist()  # the energies are increasing: q is the second one
    [False, False, True, True]
    """
    energy = torch.linalg.vector_norm(grad, dim=1)
    threshold = torch.quantile(energy.flatten(1), q=quantile, dim=1, interpolation="nearest")[:, None, None]
    excess = energy - threshold
    mask = (excess > 0)[:, None]
    unit = torch.nan_to_num(grad / energy[:, None], nan=0.0, posinf=0.0, neginf=0.0)
    return excess.clamp(min=0)[:, None] * unit, mask


def normalized_step(
    images: torch.Tensor, grad: torch.Tensor, strength: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """x + strength · (||x·m|| / ||grad·m||) · grad · m, clamped to [-1, 1], norms per image (SPEC §7).

    The step's size is ``strength`` times the (masked) image's norm, whatever the gradient's scale. An image whose
    masked gradient is 0 (an empty mask) is left unchanged, where the reference would produce NaN.

    >>> x = torch.full((1, 3, 2, 2), 0.5)
    >>> normalized_step(x, torch.ones_like(x), strength=0.1)[0, 0, 0, 0].item()  # 0.5 + 0.1 * 0.5
    0.550000011920929
    """
    if mask is None:
        mask = torch.ones_like(images[:, :1])
    grad = grad * mask
    image_norm = torch.linalg.vector_norm(images * mask, dim=(1, 2, 3), keepdim=True)
    grad_norm = torch.linalg.vector_norm(grad, dim=(1, 2, 3), keepdim=True)
    ratio = torch.where(grad_norm > 0, image_norm / grad_norm.clamp(min=torch.finfo(grad_norm.dtype).tiny), 0.0)
    return (images + strength * ratio * grad).clamp(-1.0, 1.0)


@dataclass(frozen=True)
class CLIPGuide:
    """What the CLIP loss of one pipeline call needs: the frozen model, its input size and normalisation, and the
    number of augmented views per image. Built per call; holds no state between calls.

    Args:
        clip_model: a transformers `CLIPModel` (frozen by the caller).
        num_augmentations: views per image (the reference: 16).
        mean, std: the model's normalisation (RGB).
    """

    clip_model: torch.nn.Module
    num_augmentations: int = 16
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @property
    def image_size(self) -> int:
        """CLIP's configured input size (224 for ViT-B/32): the short side of every view."""
        return int(self.clip_model.config.vision_config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.clip_model.config.vision_config.patch_size)

    def image_embeddings(self, views: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings of views (V, 3, h, w) in [0, 1], float32; the positional embeddings interpolated
        to the views' aspect ratio (views are resized to a square where this transformers lacks that option)."""
        model = self.clip_model
        mean = torch.tensor(self.mean, device=views.device, dtype=views.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=views.device, dtype=views.dtype).view(1, 3, 1, 1)
        pixels = ((views - mean) / std).to(device=model.device, dtype=model.dtype)
        if _takes_interpolate_pos_encoding(model):
            output = model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=True)
        else:
            size = (self.image_size, self.image_size)
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
            output = model.get_image_features(pixel_values=pixels)
        return _features(output).float()

    def views(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The augmented views (see [`~sinddm_pipeline.augmentations.augmented_views`]) of one image (1, 3, H, W)
        in [0, 1]."""
        size = self.image_size
        return augmented_views(
            image, self.num_augmentations, size, int(size * MAX_SIZE_RATIO), generator, min_side=self.patch_size
        )

    def image_loss(
        self, image: torch.Tensor, text_embeddings: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The loss of one image (1, 3, H, W) in [0, 1]: views and the subset of text embeddings drawn from
        ``generator`` (subset first, then the views)."""
        count = int(torch.randint(1, len(text_embeddings) + 1, (1,), generator=generator))
        chosen = torch.randint(len(text_embeddings), (count,), generator=generator)
        targets = text_embeddings[chosen.to(text_embeddings.device)]
        embeddings = self.image_embeddings(self.views(image, generator))
        similarity = F.cosine_similarity(embeddings[:, None], targets[None].to(embeddings.device), dim=-1)
        return (LOSS_SCALE * (1 - similarity.mean(dim=0))).mean()

    def loss(
        self,
        images: torch.Tensor,
        text_embeddings: torch.Tensor,
        generators: Sequence[torch.Generator | None],
    ) -> torch.Tensor:
        """The summed loss of images (N, 3, H, W) in [-1, 1]; image i draws its randomness from ``generators[i]``."""
        if len(generators) != images.shape[0]:
            raise ValueError(f"Need one generator per image: {len(generators)} for {images.shape[0]} images.")
        unit = (images + 1) / 2
        return sum(self.image_loss(unit[i : i + 1], text_embeddings, generators[i]) for i in range(len(unit)))

    @torch.enable_grad()
    def gradient(
        self,
        images: torch.Tensor,
        text_embeddings: torch.Tensor,
        generators: Sequence[torch.Generator | None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The guidance direction -d(loss)/d(images) for images in [-1, 1], and the loss (detached)."""
        images = images.detach().float().requires_grad_(True)
        loss = self.loss(images, text_embeddings, generators)
        (grad,) = torch.autograd.grad(-loss, images)
        return grad, loss.detach()
