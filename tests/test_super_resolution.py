"""Super-resolution: the output has the requested size and, downsampled back (area), stays close to the input.

Measured on an Intel Xeon @ 2.80GHz (mean absolute difference in [0, 1] between the output, area-downsampled to the
input's size, and the input; factor 2, the pipeline's own training image as input, default start timestep 5):

===============================================  =============  ===============  ==============================
pipeline                                         SR (seeds 0-1)  5x5 box-blurred  for scale
===============================================  =============  ===============  ==============================
shipped hubble model, fast sampling              0.0175, 0.0175  0.0054           a free sample: 0.051 (0.038)
shipped hubble model, fast, start t_i = 25      0.0303, 0.0306  0.0145           bicubic up and down: 0.0047
training-free, skimage coffee at 6,000 px        0.0380          0.0199           a free sample: 0.122 (0.095)
===============================================  =============  ===============  ==============================

The finest scale redraws the detail, so the output is not the input's exact up-sampling; the layout and colours are
kept (the blurred error is a seventh of a free sample's). Starting at the finest scale's t_i (25 on hubble) redraws
more: sharper, but colours drift.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fast_shipped_pipe, quiet_pipe, tiny_pipeline
from skimage import data

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.pipeline_sinddm_superres import (
    START_TIMESTEP,
    SinDDMSuperResolutionPipeline,
    upscale_stages,
)

HUBBLE_BOUND = 0.025
"""Downsampled-back error of hubble's 2x SR at most (measured 0.0175)."""
HUBBLE_BLURRED_BOUND = 0.01
"""The same after a 5x5 box blur (measured 0.0054; a free sample: 0.038)."""
TRAINING_FREE_BOUND = 0.05
"""Downsampled-back error of the training-free 2x SR at most (measured 0.0380; a free sample: 0.122)."""


def as_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def downsampled_error(output: torch.Tensor, image: torch.Tensor, blur: int = 1) -> float:
    down = F.interpolate(output, size=image.shape[-2:], mode="area")
    if blur > 1:
        down, image = (F.avg_pool2d(x, blur, 1, blur // 2, count_include_pad=False) for x in (down, image))
    return float((down - image).abs().mean())


@pytest.fixture(scope="module")
def hubble() -> SinDDMSuperResolutionPipeline:
    return fast_shipped_pipe(SinDDMSuperResolutionPipeline)


@pytest.fixture(scope="module")
def coffee() -> SinDDMSuperResolutionPipeline:
    return quiet_pipe(SinDDMSuperResolutionPipeline, SinDDMPipeline.from_image(data.coffee(), max_pixels=6000))


def test_hubble_2x_has_the_size_and_stays_close_to_the_input(hubble):
    image = hubble.pyramid.pil(hubble.pyramid.num_scales - 1)
    output = hubble(image, upscale_factor=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert output.shape == (1, 3, 2 * image.height, 2 * image.width) == (1, 3, 416, 478)
    reference = as_tensor(image)
    assert downsampled_error(output, reference) <= HUBBLE_BOUND
    assert downsampled_error(output, reference, blur=5) <= HUBBLE_BLURRED_BOUND


def test_training_free_2x_stays_close_and_a_higher_start_changes_more(coffee):
    image = coffee.pyramid.pil(coffee.pyramid.num_scales - 1)
    reference = as_tensor(image)
    output = coffee(image, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert output.shape[-2:] == (round(2 * image.height), round(2 * image.width))
    default_error = downsampled_error(output, reference)
    assert default_error <= TRAINING_FREE_BOUND
    t_i = coffee.scheduler.start_timesteps[-1]
    further = coffee(image, start_timestep=t_i, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert downsampled_error(further, reference) > default_error


@pytest.mark.parametrize("factor", [1.25, 1.5, 3, 4.0])
def test_the_output_size_is_the_rounded_factor_times_the_input(factor):
    pipe = SinDDMSuperResolutionPipeline.from_pipe(tiny_pipeline())
    pipe.set_progress_bar_config(disable=True)
    image = np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    output = pipe(image, upscale_factor=factor, num_inference_steps=2, output_type="np").images
    assert output.shape == (1, round(factor * 21), round(factor * 30), 3)


def test_stages_grow_by_about_the_scale_factor_to_exactly_the_target():
    stages = upscale_stages((100, 120), 4.0, 2**0.5, 3)
    assert [stage.size for stage in stages] == [(141, 170), (200, 240), (283, 339), (400, 480)]
    assert {stage.scale for stage in stages} == {3}
    assert [stage.size for stage in upscale_stages((33, 47), 3.0, 1.4, 2)][-1] == (99, 141)


def test_seeded_calls_are_deterministic_and_the_steps_are_counted(tiny_pipe):
    pipe = SinDDMSuperResolutionPipeline.from_pipe(tiny_pipe)
    pipe.set_progress_bar_config(disable=True)
    image = tiny_pipe.pyramid.pil(tiny_pipe.pyramid.num_scales - 1)
    steps = []

    def callback(pipe, index, timestep, kwargs):
        steps.append(index)
        return kwargs

    first = pipe(image, generator=torch.Generator().manual_seed(1), output_type="pt", callback_on_step_end=callback)
    again = pipe(image, generator=torch.Generator().manual_seed(1), output_type="pt").images
    other = pipe(image, generator=torch.Generator().manual_seed(2), output_type="pt").images
    assert torch.equal(first.images, again)
    assert not torch.equal(first.images, other)
    finest = tiny_pipe.scheduler.num_scales - 1
    num_stages = len(upscale_stages(image.size[::-1], 2.0, tiny_pipe.scheduler.config.scale_factor, finest))
    start = min(START_TIMESTEP, tiny_pipe.scheduler.start_timesteps[finest])
    assert steps == list(range(start * num_stages)) == list(
        range(pipe.num_timesteps)
    )


def test_tileable_super_resolution_runs_and_differs(tiny_pipe):
    pipe = SinDDMSuperResolutionPipeline.from_pipe(tiny_pipe)
    pipe.set_progress_bar_config(disable=True)
    image = tiny_pipe.pyramid.pil(tiny_pipe.pyramid.num_scales - 1)
    plain = pipe(image, generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="pt").images
    tiled = pipe(
        image, generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="pt", tileable=True
    ).images
    assert tiled.shape == plain.shape and not torch.equal(tiled, plain)


@pytest.mark.parametrize("factor", [0, 1, 1.2, 4.5, 8, -2, float("nan"), float("inf"), "2", True, None])
def test_bad_factors_are_refused_naming_the_argument_and_range(tiny_pipe, factor):
    pipe = SinDDMSuperResolutionPipeline.from_pipe(tiny_pipe)
    with pytest.raises(ValueError, match=r"upscale_factor must be a number in \[1.25, 4.0\]"):
        pipe(np.zeros((16, 16, 3), dtype=np.uint8), upscale_factor=factor)


def test_bad_inputs_are_refused_before_anything_is_allocated(tiny_pipe):
    pipe = SinDDMSuperResolutionPipeline.from_pipe(tiny_pipe)
    with pytest.raises(ValueError, match=r"4096x4096.*smaller image"):
        pipe(np.zeros((2100, 2100, 3), dtype=np.uint8), upscale_factor=2)
    with pytest.raises(ValueError, match="at least 8 px"):
        pipe(np.zeros((4, 40, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="not an image"):
        pipe("photo.png")
    with pytest.raises(ValueError, match="start_timestep"):
        pipe(np.zeros((16, 16, 3), dtype=np.uint8), start_timestep=0)
