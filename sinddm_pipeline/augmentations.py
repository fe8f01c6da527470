"""Differentiable image augmentations in plain torch, for the CLIP loss of text guidance (SPEC §7).

The reference (Text2LIVE's CLIP extractor) builds its views with torchvision; torchvision does not import beside
the CPU torch this project targets, and everything needed is a few lines of torch: bilinear resizing, crops,
flips, affine and perspective warps through ``grid_sample``, colour jitter and grayscale. Every op is
differentiable with respect to the image, so the CLIP loss of the views can be back-propagated to the pixels.

The views of an image (``augmented_views``), as the reference makes them:

1. view 0 is the whole image resized so that its short side is CLIP's input size (the long side at most
   ``max_size``); every other view is a random crop of 60-100 % of each side, resized to view 0's size;
2. each view then goes through: horizontal flip (p = 0.5), random affine (p = 0.8: rotation up to 15 degrees,
   translation up to 10 %), random perspective (p = 0.5, distortion 0.4), colour jitter (p = 0.7: brightness,
   contrast, saturation and hue by up to 0.1, in random order) and grayscale (p = 0.15). Areas warped in from
   outside the image are filled with white (1.0), as the reference does.

All random draws come from the ``generator`` argument (a CPU ``torch.Generator``), so the pipelines can keep them
apart from the draws of the diffusion noise.

Images are (N, 3, H, W) tensors with values in [0, 1].

Example:
    >>> import torch
    >>> from sinddm_pipeline.augmentations import augmented_views
    >>> image = torch.rand(1, 3, 48, 64, requires_grad=True)
    >>> views = augmented_views(image, num_views=4, size=32, max_size=45, generator=torch.Generator().manual_seed(0))
    >>> views.shape
    torch.Size([4, 3, 32, 42])
    >>> views.sum().backward()
    >>> image.grad.abs().sum() > 0
    tensor(True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights, as PIL's and torchvision's grayscale."""


# ---------------------------------------------------------------------------------------------------------------
# random draws (on the CPU generator, whatever the device of the image)


def uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    """One number drawn uniformly from [low, high).

    >>> uniform(torch.Generator().manual_seed(0), 2.0, 3.0)  # doctest: +ELLIPSIS
    2.49...
    """
    return low + (high - low) * float(torch.rand(1, generator=generator))


def randint(generator: torch.Generator | None, low: int, high: int) -> int:
    """One integer drawn uniformly from [low, high) (``low`` when the range is empty).

    >>> randint(torch.Generator().manual_seed(0), 3, 4)
    3
    """
    if high <= low + 1:
        return low
    return int(torch.randint(low, high, (1,), generator=generator))


def chance(generator: torch.Generator | None, p: float) -> bool:
    """True with probability ``p``.

    >>> chance(torch.Generator(), 0.0), chance(torch.Generator(), 1.0)
    (False, True)
    """
    return float(torch.rand(1, generator=generator)) < p


# ---------------------------------------------------------------------------------------------------------------
# geometry


def short_side_size(
    height: int, width: int, size: int, max_size: int | None = None, min_side: int = 1
) -> tuple[int, int]:
    """(height, width) after resizing the short side to ``size`` keeping the aspect ratio, the long side capped at
    ``max_size`` (as torchvision's ``Resize(size, max_size=...)``), and neither side below ``min_side``.

    >>> short_side_size(48, 64, 32), short_side_size(20, 200, 32, max_size=45, min_side=8)
    ((32, 42), (8, 45))
    """
    short, long = min(height, width), max(height, width)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_short, new_long = max(new_short, min_side), max(new_long, min_side)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to (height, width) with anti-aliasing when shrinking (as torchvision's tensor ``Resize``).

    >>> resize(torch.ones(1, 3, 10, 20), (5, 7)).shape
    torch.Size([1, 3, 5, 7])
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def random_crop(images: torch.Tensor, height: int, width: int, generator: torch.Generator | None) -> torch.Tensor:
    """A (height, width) crop at a uniformly random position (the same for the whole batch).

    >>> random_crop(torch.rand(1, 3, 10, 20), 4, 5, torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 4, 5])
    """
    top = randint(generator, 0, images.shape[-2] - height + 1)
    left = randint(generator, 0, images.shape[-1] - width + 1)
    return images[..., top : top + height, left : left + width]


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of every output pixel, float64, shape (height, width) each."""
    rows = torch.arange(height, dtype=torch.float64, device=device)
    cols = torch.arange(width, dtype=torch.float64, device=device)
    return torch.meshgrid(rows, cols, indexing="ij")


def warp(images: torch.Tensor, source_x: torch.Tensor, source_y: torch.Tensor, fill: float) -> torch.Tensor:
    """Sample ``images`` at the (fractional) pixel positions ``source_x``, ``source_y`` (each (H, W), pixel
    indices of the input) bilinearly; positions outside the image blend towards ``fill``.

    >>> y, x = _pixel_grid(4, 6, torch.device("cpu"))
    >>> image = torch.rand(1, 3, 4, 6)
    >>> torch.allclose(warp(image, x, y, fill=1.0), image, atol=1e-6)  # the identity map
    True
    """
    height, width = images.shape[-2:]
    grid = torch.stack([(2 * source_x + 1) / width - 1, (2 * source_y + 1) / height - 1], dim=-1)
    grid = grid[None].to(images.dtype).expand(images.shape[0], -1, -1, -1)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(
        torch.ones_like(images[:, :1]), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return warped + (1 - inside) * fill


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator | None,
    degrees: float = 15.0,
    translate: float = 0.1,
    fill: float = 1.0,
) -> torch.Tensor:
    """Rotate about the centre by a uniform angle in [-degrees, degrees] and shift by whole pixels up to
    ``translate`` · the size (torchvision's ``RandomAffine(degrees, translate)`` parameters).

    >>> random_affine(torch.rand(1, 3, 8, 10), torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 8, 10])
    """
    height, width = images.shape[-2:]
    angle = math.radians(uniform(generator, -degrees, degrees))
    shift_x = round(uniform(generator, -translate * width, translate * width))
    shift_y = round(uniform(generator, -translate * height, translate * height))
    rows, cols = _pixel_grid(height, width, images.device)
    # output pixel -> input pixel: undo the shift, then the rotation about the image centre
    u = cols - (width - 1) / 2 - shift_x
    v = rows - (height - 1) / 2 - shift_y
    cos, sin = math.cos(angle), math.sin(angle)
    source_x = cos * u + sin * v + (width - 1) / 2
    source_y = -sin * u + cos * v + (height - 1) / 2
    return warp(images, source_x, source_y, fill)


def perspective_coefficients(startpoints: list[list[float]], endpoints: list[list[float]]) -> list[float]:
    """The 8 coefficients (a, b, c, d, e, f, g, h) of the homography that maps each end point (x, y) to its start
    point: ((a·x + b·y + c) / (g·x + h·y + 1), (d·x + e·y + f) / (g·x + h·y + 1)).

    >>> square = [[0, 0], [9, 0], [9, 9], [0, 9]]
    >>> [round(c, 6) + 0.0 for c in perspective_coefficients(square, square)]
    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    """
    rows, targets = [], []
    for (x, y), (sx, sy) in zip(endpoints, startpoints, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -sx * x, -sx * y])
        rows.append([0, 0, 0, x, y, 1, -sy * x, -sy * y])
        targets += [sx, sy]
    matrix = torch.tensor(rows, dtype=torch.float64)
    return torch.linalg.solve(matrix, torch.tensor(targets, dtype=torch.float64)).tolist()


def random_perspective(
    images: torch.Tensor, generator: torch.Generator | None, distortion_scale: float = 0.4, fill: float = 1.0
) -> torch.Tensor:
    """Move each corner inwards by up to ``distortion_scale`` · half the size and warp the image accordingly
    (torchvision's ``RandomPerspective`` parameters).

    >>> random_perspective(torch.rand(1, 3, 8, 10), torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 8, 10])
    """
    height, width = images.shape[-2:]
    bound_h = int(distortion_scale * (height // 2)) + 1
    bound_w = int(distortion_scale * (width // 2)) + 1
    endpoints = [
        [randint(generator, 0, bound_w), randint(generator, 0, bound_h)],
        [randint(generator, width - bound_w, width), randint(generator, 0, bound_h)],
        [randint(generator, width - bound_w, width), randint(generator, height - bound_h, height)],
        [randint(generator, 0, bound_w), randint(generator, height - bound_h, height)],
    ]
    startpoints = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
    a, b, c, d, e, f, g, h = perspective_coefficients(startpoints, endpoints)
    rows, cols = _pixel_grid(height, width, images.device)
    denominator = g * cols + h * rows + 1
    return warp(images, (a * cols + b * rows + c) / denominator, (d * cols + e * rows + f) / denominator, fill)


# ---------------------------------------------------------------------------------------------------------------
# colour


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601), shape (N, 1, H, W).

    >>> grayscale(torch.ones(1, 3, 2, 2)).shape
    torch.Size([1, 1, 2, 2])
    """
    r, g, b = images.unbind(dim=-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV, every channel in [0, 1] (hue as a fraction of the circle).

    >>> rgb_to_hsv(torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)).flatten().tolist()
    [0.0, 1.0, 1.0]
    """
    r, g, b = images.unbind(dim=-3)
    value, _ = images.max(dim=-3)
    low, _ = images.min(dim=-3)
    chroma = value - low
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    saturation = chroma / torch.where(value > 0, value, torch.ones_like(value))
    red_hue = ((g - b) / safe_chroma) % 6
    green_hue = (b - r) / safe_chroma + 2
    blue_hue = (r - g) / safe_chroma + 4
    hue = torch.where(value == r, red_hue, torch.where(value == g, green_hue, blue_hue))
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    return torch.stack([hue, saturation, value], dim=-3)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """HSV (every channel in [0, 1]) to RGB in [0, 1]; the inverse of `rgb_to_hsv`.

    >>> image = torch.rand(1, 3, 4, 4)
    >>> torch.allclose(hsv_to_rgb(rgb_to_hsv(image)), image, atol=1e-5)
    True
    """
    hue, saturation, value = images.unbind(dim=-3)

    def channel(n: float) -> torch.Tensor:
        k = (n + hue * 6) % 6
        return value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return torch.stack([channel(5), channel(3), channel(1)], dim=-3)


def color_jitter(
    images: torch.Tensor,
    generator: torch.Generator | None,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.1,
) -> torch.Tensor:
    """Brightness, contrast and saturation factors uniform in [1 - x, 1 + x] and a hue shift uniform in
    [-hue, hue] (fraction of the circle), applied in a random order (torchvision's ``ColorJitter``).

    >>> color_jitter(torch.rand(1, 3, 4, 4), torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 4, 4])
    """
    order = torch.randperm(4, generator=generator).tolist()
    factors = [
        uniform(generator, 1 - brightness, 1 + brightness),
        uniform(generator, 1 - contrast, 1 + contrast),
        uniform(generator, 1 - saturation, 1 + saturation),
        uniform(generator, -hue, hue),
    ]
    for index in order:
        factor = factors[index]
        if index == 0:
            images = (images * factor).clamp(0, 1)
        elif index == 1:
            mean = grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
            images = (factor * images + (1 - factor) * mean).clamp(0, 1)
        elif index == 2:
            images = (factor * images + (1 - factor) * grayscale(images)).clamp(0, 1)
        else:
            hsv = rgb_to_hsv(images)
            hsv = torch.cat([(hsv[:, :1] + factor) % 1.0, hsv[:, 1:]], dim=1)
            images = hsv_to_rgb(hsv)
    return images


# ---------------------------------------------------------------------------------------------------------------
# the views


def augment(view: torch.Tensor, generator: torch.Generator | None, fill: float = 1.0) -> torch.Tensor:
    """The reference's augmentation chain on one view (1, 3, H, W): flip (p 0.5), affine (p 0.8), perspective
    (p 0.5), colour jitter (p 0.7), grayscale (p 0.15).

    >>> augment(torch.rand(1, 3, 8, 8), torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 8, 8])
    """
    if chance(generator, 0.5):
        view = view.flip(-1)
    if chance(generator, 0.8):
        view = random_affine(view, generator, fill=fill)
    if chance(generator, 0.5):
        view = random_perspective(view, generator, fill=fill)
    if chance(generator, 0.7):
        view = color_jitter(view, generator)
    if chance(generator, 0.15):
        view = grayscale(view).expand_as(view)
    return view


def augmented_views(
    image: torch.Tensor,
    num_views: int,
    size: int,
    max_size: int | None,
    generator: torch.Generator | None,
    min_side: int = 1,
) -> torch.Tensor:
    """``num_views`` augmented views of one image (1, 3, H, W) in [0, 1], all of the same size: the image's short
    side resized to ``size`` (long side at most ``max_size``, sides at least ``min_side``). View 0 shows the
    whole image, the others random crops of 60-100 % of each side; each then goes through `augment`.

    Returns a (num_views, 3, h, w) tensor, differentiable with respect to ``image``.

    >>> views = augmented_views(torch.rand(1, 3, 40, 30), 3, 16, None, torch.Generator().manual_seed(1))
    >>> views.shape
    torch.Size([3, 3, 21, 16])
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"augmented_views takes one image of shape (1, 3, H, W), got {tuple(image.shape)}.")
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}.")
    height, width = image.shape[-2:]
    view_size = short_side_size(height, width, size, max_size, min_side)
    views = [augment(resize(image, view_size), generator)]
    for _ in range(num_views - 1):
        fraction = uniform(generator, 0.6, 1.0)
        crop = random_crop(image, max(1, int(height * fraction)), max(1, int(width * fraction)), generator)
        views.append(augment(resize(crop, view_size), generator))
    return torch.cat(views)
