"""Animation: N frames of a smooth loop in noise space; neighbouring frames differ far less than independent samples,
the last frame leads back to the first, seeded calls repeat, and the GIF round-trips.

Measured on this machine (mean absolute difference in [0, 1] of consecutive frames, of the last and the first,
and of frame i of two animations with different seeds, "independent"; variation 0.5, animated_scales 2, N = 8):

====================================================  ====================  =============  ===========  =====
pipeline                                              consecutive (max)     last -> first  independent  ratio
====================================================  ====================  =============  ===========  =====
shipped hubble, fast sampling, 119x104                0.0057 (0.0106)       0.0017         0.053        0.11
training-free coffee at 6,000 px, steps [10, 3]       0.030 (0.048)         0.022          0.068        0.44
tiny random model (tests/conftest.py), 10 steps      0.102 (0.103)         0.103          0.446        0.23
====================================================  ====================  =============  ===========  =====

("ratio": mean consecutive over independent.) The training-free denoiser copies patches of the image, so a frame
now and then switches a patch (its largest steps); its default 30 coarse steps give 0.31 at N = 8 and 0.23 at 16.
With animated_scales=1 hubble barely moves (0.0001 per frame: its content is fine detail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import fast_shipped_pipe, quiet_pipe, tiny_pipeline
from PIL import Image
from skimage import data

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.animation_export import export_animation, frames_to_pil, mp4_available
from sinddm_pipeline.pipeline_sinddm_animation import MAX_FRAMES, SinDDMAnimationPipeline, noise_loop

NUM_FRAMES = 8


def animate(pipe: SinDDMAnimationPipeline, seed: int, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return pipe(num_frames=NUM_FRAMES, generator=generator, output_type="pt", **kwargs).frames


def differences(frames: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """(consecutive differences, last -> first, mean difference from independent frames)."""
    consecutive = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))
    closing = float((frames[-1] - frames[0]).abs().mean())
    return consecutive, closing, float((frames - other).abs().mean())


def check_loop(frames, other, ratio_bound: float, closing_bound: float) -> None:
    consecutive, closing, independent = differences(frames, other)
    assert frames.shape[0] == NUM_FRAMES
    assert consecutive.mean() / independent <= ratio_bound  # smooth: neighbours differ far less than samples
    assert closing <= 1.5 * consecutive.max()  # the last frame leads back to the first like any other step ...
    assert closing / independent <= closing_bound  # ... not like an independent sample


@pytest.fixture(scope="module")
def tiny_animation() -> SinDDMAnimationPipeline:
    return quiet_pipe(SinDDMAnimationPipeline, tiny_pipeline())


def test_hubble_frames_are_smooth_and_the_loop_closes():
    pipe = fast_shipped_pipe(SinDDMAnimationPipeline)
    size = {"height_scale": 0.5, "width_scale": 0.5}
    check_loop(animate(pipe, 0, **size), animate(pipe, 1, **size), ratio_bound=0.25, closing_bound=0.15)


def test_training_free_frames_are_smooth_and_the_loop_closes():
    pipe = quiet_pipe(SinDDMAnimationPipeline, SinDDMPipeline.from_image(data.coffee(), max_pixels=6000))
    steps = {"num_inference_steps": [10, 3]}
    check_loop(animate(pipe, 0, **steps), animate(pipe, 1, **steps), ratio_bound=0.6, closing_bound=0.5)


def test_tiny_frames_are_smooth_the_loop_closes_and_seeds_repeat(tiny_animation):
    frames = animate(tiny_animation, 0, num_inference_steps=10)
    check_loop(frames, animate(tiny_animation, 1, num_inference_steps=10), ratio_bound=0.4, closing_bound=0.4)
    assert torch.equal(animate(tiny_animation, 0, num_inference_steps=10), frames)


def test_frames_lie_on_one_loop_whatever_its_length(tiny_animation):
    # frame 2k of 2N frames has the angle of frame k of N (same seed, same loop): the loop is a closed curve
    steps = {"num_inference_steps": 10, "output_type": "pt"}
    half = tiny_animation(num_frames=4, generator=torch.Generator().manual_seed(3), **steps).frames
    full = tiny_animation(num_frames=8, generator=torch.Generator().manual_seed(3), **steps).frames
    assert torch.allclose(full[::2], half, atol=1e-5)
    assert not torch.allclose(full[1], full[0], atol=1e-3)


def test_the_loop_noise_is_standard_normal_and_closes():
    basis = torch.randn(3, 200_000, generator=torch.Generator().manual_seed(0))
    loop = noise_loop(basis, range(12), 12, variation=0.7)
    assert abs(float(loop.std()) - 1) < 0.01 and abs(float(loop.mean())) < 0.01
    assert torch.allclose(noise_loop(basis, [12], 12, 0.7), loop[:1], atol=1e-5)
    correlation = float((loop[0] * loop[1]).mean())
    assert math.isclose(correlation, (1 + 0.49 * math.cos(2 * math.pi / 12)) / 1.49, abs_tol=0.01)


def test_output_types(tiny_animation):
    generator = torch.Generator().manual_seed(0)
    pil = tiny_animation(num_frames=3, generator=generator, num_inference_steps=2).frames
    assert len(pil) == 3 and all(isinstance(frame, Image.Image) for frame in pil)
    array = tiny_animation(num_frames=3, num_inference_steps=2, output_type="np").frames
    height, width = tiny_animation.plan()[-1].size
    assert array.shape == (3, height, width, 3)
    (tensor,) = tiny_animation(num_frames=3, num_inference_steps=2, output_type="pt", return_dict=False)
    assert tensor.shape == (3, 3, height, width)


def test_the_gif_round_trips(tiny_animation, tmp_path):
    frames = tiny_animation(num_frames=5, generator=torch.Generator().manual_seed(0), num_inference_steps=2).frames
    path = export_animation(frames, tmp_path / "loop.gif", fps=12.5)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info["loop"] == 0 and gif.size == frames[0].size
        assert gif.info["duration"] == 80
        gif.seek(4)
        last = np.asarray(gif.convert("RGB"), dtype=np.float64)
    assert np.abs(last - np.asarray(frames[4], dtype=np.float64)).mean() < 8  # GIF's 256-colour palette
    assert [frame.size for frame in frames_to_pil(np.zeros((2, 6, 9, 3)))] == [(9, 6)] * 2


def test_an_existing_file_is_kept_unless_overwrite_is_given(tmp_path):
    mine = tmp_path / "loop.gif"
    mine.write_bytes(b"the user's file")
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    with pytest.raises(FileExistsError, match="loop.gif"):
        export_animation(frames, mine)
    assert mine.read_bytes() == b"the user's file"
    export_animation(frames, mine, overwrite=True)
    with Image.open(mine) as gif:
        assert gif.n_frames == 3


@pytest.mark.skipif(not mp4_available(), reason="MP4 export needs the optional imageio-ffmpeg package")
def test_the_mp4_round_trips(tmp_path):
    import imageio_ffmpeg

    path = export_animation(np.random.default_rng(0).random((6, 25, 33, 3)), tmp_path / "loop.mp4", fps=8)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["fps"] == 8 and sum(1 for _ in reader) == 6


def test_mp4_without_imageio_ffmpeg_says_what_to_install(tmp_path, monkeypatch):
    import sinddm_pipeline.animation_export as export

    monkeypatch.setattr(export, "mp4_available", lambda: False)
    with pytest.raises(ValueError, match="pip install imageio-ffmpeg"):
        export.export_animation([Image.new("RGB", (8, 8))], tmp_path / "loop.mp4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, r"num_frames must be an int in \[2, 240\]"),
        ({"num_frames": -3}, r"num_frames must be an int in \[2, 240\]"),
        ({"num_frames": MAX_FRAMES + 1}, r"num_frames must be an int in \[2, 240\]"),
        ({"num_frames": 4.0}, r"num_frames must be an int in \[2, 240\]"),
        ({"num_frames": True}, r"num_frames must be an int in \[2, 240\]"),
        ({"variation": 0}, "variation must be a finite number > 0"),
        ({"variation": -0.5}, "variation must be a finite number > 0"),
        ({"variation": float("nan")}, "variation must be a finite number > 0"),
        ({"variation": float("inf")}, "variation must be a finite number > 0"),
        ({"variation": "0.5"}, "variation must be a finite number > 0"),
        ({"animated_scales": 0}, "animated_scales must be an int in"),
        ({"animated_scales": 99}, "animated_scales must be an int in"),
        ({"output_type": "gif"}, "output_type must be one of"),
        ({"tileable": 1}, "tileable must be True or False"),
        ({"num_frames": 240, "height": 1000, "width": 1000}, "num_frames 240 x 1000x1000 px"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(tiny_animation, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_animation(**kwargs)


@pytest.mark.parametrize(
    ("name", "fps", "message"),
    [("loop.avi", 10, "path must end in one of"), ("loop.gif", 0, r"fps must be a number in \(0, 100\]"),
     ("loop.gif", float("nan"), "fps must be a number"), ("loop.gif", 1000, "fps must be a number")],
)
def test_bad_export_arguments_are_refused(tmp_path, name, fps, message):
    with pytest.raises(ValueError, match=message):
        export_animation([Image.new("RGB", (8, 8))] * 2, tmp_path / name, fps=fps)
