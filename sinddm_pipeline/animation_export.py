"""Write animation frames to a looping GIF (Pillow) or an MP4 (only when imageio-ffmpeg is installed).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from sinddm_pipeline.animation_export import export_animation
    >>> frames = [Image.new("RGB", (32, 24), (8 * i, 0, 255 - 8 * i)) for i in range(8)]
    >>> path = export_animation(frames, Path(tempfile.mkdtemp()) / "loop.gif", fps=12)
    >>> with Image.open(path) as gif:
    ...     gif.n_frames, gif.info["loop"]
    (8, 0)
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MAX_FPS = 100
"""Frames per second at most (a GIF stores frame durations in hundredths of a second)."""
FORMATS = (".gif", ".mp4")


def frames_to_pil(frames: Sequence[Image.Image] | np.ndarray | torch.Tensor) -> list[Image.Image]:
    """Animation frames as RGB PIL images: a list of PIL images, an (N, H, W, 3) array in [0, 1] or uint8, or an
    (N, 3, H, W) tensor in [0, 1] (the pipeline's ``"pil"``, ``"np"`` and ``"pt"`` outputs).

    Example:
        >>> import numpy as np
        >>> [image.size for image in frames_to_pil(np.zeros((2, 24, 32, 3)))]
        [(32, 24), (32, 24)]
    """
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames: expected an (N, 3, H, W) tensor in [0, 1], got shape {tuple(frames.shape)}.")
        frames = frames.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected an (N, H, W, 3) array, got shape {frames.shape}.")
        if frames.dtype != np.uint8:
            frames = np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
        frames = [Image.fromarray(frame) for frame in frames]
    frames = list(frames)
    if not frames or not all(isinstance(frame, Image.Image) for frame in frames):
        raise ValueError(
            "frames: expected at least one frame: PIL images, an (N, H, W, 3) array or an (N, 3, H, W) tensor."
        )
    if len({frame.size for frame in frames}) > 1:
        raise ValueError(f"frames: all frames must have one size, got {sorted({frame.size for frame in frames})}.")
    return [frame.convert("RGB") for frame in frames]


def mp4_available() -> bool:
    """Whether MP4 export works here (the optional ``imageio-ffmpeg`` package is installed)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def export_animation(
    frames: Sequence[Image.Image] | np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    fps: float = 10.0,
    overwrite: bool = False,
) -> Path:
    """Write ``frames`` (see `frames_to_pil`) to ``path`` as a clip that loops forever; returns the path.

    ``.gif``: Pillow, every frame a full frame, ``loop=0`` (forever), 1000 / ``fps`` ms per frame (GIF rounds it to
    10 ms). ``.mp4``: H.264 via ``imageio-ffmpeg`` (``pip install imageio-ffmpeg``; not a dependency of this
    package), which players loop when told to.

    An existing file at ``path`` is kept (FileExistsError) unless ``overwrite``.

    Raises:
        ValueError: for another suffix, ``fps`` not a number in (0, 100], no frames, or MP4 without
            imageio-ffmpeg installed.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; choose another path or pass overwrite=True.")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"path must end in one of {FORMATS}, got {str(path)!r}.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be a number in (0, {MAX_FPS}], got {fps!r}.")
    images = frames_to_pil(frames)
    if suffix == ".gif":
        images[0].save(
            path,
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
            disposal=1,
            optimize=False,
        )
        return path
    if not mp4_available():
        raise ValueError("MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg); .gif needs none.")
    import imageio_ffmpeg

    width, height = images[0].size
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        macro_block_size=1,
        # H.264's yuv420p needs even sides: odd ones get one black row or column
        output_params=["-crf", "18", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
    )
    writer.send(None)  # start the generator
    for image in images:
        writer.send(np.ascontiguousarray(np.asarray(image)))
    writer.close()
    return path
