"""Small images made with PIL alone: sample grids and loss curves (no plotting library needed)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


def image_grid(images: list[Image.Image], columns: int = 4, padding: int = 2) -> Image.Image:
    """The images in a grid, ``columns`` wide, on a white background."""
    if not images:
        raise ValueError("image_grid needs at least one image.")
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (columns * (width + padding) + padding, rows * (height + padding) + padding), "white")
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid.paste(image.convert("RGB"), (padding + column * (width + padding), padding + row * (height + padding)))
    return grid


def loss_curve_image(losses: list[tuple[int, float]], size: tuple[int, int] = (640, 320), window: int = 50):
    """A line plot of the loss per step (a moving average over ``window`` steps in blue, raw in grey)."""
    width, height = size
    margin = 40
    steps = np.array([step for step, _ in losses], dtype=np.float64)
    values = np.array([value for _, value in losses], dtype=np.float64)
    kernel = min(window, len(values))
    smooth = np.convolve(values, np.ones(kernel) / kernel, mode="valid")
    low, high = float(values.min()), float(np.percentile(values, 99))
    high = high if high > low else low + 1e-6
    x_max = max(float(steps[-1]), 1.0)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def point(step: float, value: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * step / x_max
        y = height - margin - (height - 2 * margin) * (min(value, high) - low) / (high - low)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    draw.line([point(s, v) for s, v in zip(steps, values, strict=True)], fill=(190, 190, 190))
    if len(smooth) > 1:
        draw.line([point(s, v) for s, v in zip(steps[kernel - 1 :], smooth, strict=True)], fill=(30, 90, 200), width=2)
    draw.text((margin, 8), f"L1 loss (steps 0..{int(x_max)}): {low:.4f} .. {high:.4f}", fill="black")
    return image
