"""Tileable (seamless) output: the denoiser sees a torus, the up-sampling between scales wraps around, and the
wrap-around seam of a sample is no rougher than its interior; the default path is unchanged, bit for bit.

Seam ratio (`sinddm_pipeline.metrics.seams.seam_ratio`: gradient energy across the wrap-around seams over that
between neighbouring pixels inside), measured on this machine, seeds 0-3 (mean of the per-sample ratios):

==========================================================  =====================  ==================
pipeline                                                    tileable=True          tileable=False
==========================================================  =====================  ==================
shipped hubble model, fast sampling, 239x208                0.93 (0.60 - 1.42)     2.41 (1.67 - 3.82)
training-free, skimage coffee at 6,000 px (94x63), seeds 0-2  1.13 (1.05 - 1.19)     38 (31 - 49)
==========================================================  =====================  ==================

Under wrap-around every column pair, the seam included, has the same distribution, so a tileable sample's ratio
scatters around 1 (hubble's single seam lines vary from sample to sample: its interior is a sparse star field).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import fast_shipped_pipe, tiny_pipeline
from diffusers.utils.torch_utils import randn_tensor
from skimage import data

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.metrics.seams import seam_ratio
from sinddm_pipeline.pipeline_sinddm_base import wrap_interpolate

SEAM_BOUND = 1.5
"""A tileable sample's mean seam ratio at most (measured 0.93 and 1.13)."""
PLAIN_AT_LEAST = 1.6
"""A plain sample's mean seam ratio at least (measured 2.41 and 38): the measure sees seams."""


def generators(count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in range(count)]


@pytest.fixture(scope="module")
def hubble() -> SinDDMPipeline:
    return fast_shipped_pipe(SinDDMPipeline)


@pytest.fixture(scope="module")
def coffee() -> SinDDMPipeline:
    pipe = SinDDMPipeline.from_image(data.coffee(), max_pixels=6000)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_tileable_hubble_sample_has_no_seam(hubble):
    tileable = hubble(batch_size=4, generator=generators(4), output_type="pt", tileable=True).images
    plain = hubble(batch_size=4, generator=generators(4), output_type="pt").images
    assert seam_ratio(tileable).mean <= SEAM_BOUND
    assert seam_ratio(plain).mean >= PLAIN_AT_LEAST


def test_a_tileable_training_free_sample_has_no_seam(coffee):
    tileable = coffee(batch_size=3, generator=generators(3), output_type="pt", tileable=True).images
    plain = coffee(batch_size=3, generator=generators(3), output_type="pt").images
    assert seam_ratio(tileable).mean <= SEAM_BOUND
    assert seam_ratio(plain).mean >= PLAIN_AT_LEAST


def reference_generation(pipe: SinDDMPipeline, seed: int, num_inference_steps=None) -> torch.Tensor:
    """The generation loop as it was before tileable output: zero padding, bilinear up-sampling, one generator."""
    generator = torch.Generator().manual_seed(seed)
    stages = pipe.plan()
    steps = pipe.check_num_inference_steps(pipe.default_num_inference_steps(num_inference_steps))
    sample = randn_tensor((1, 3, *stages[0].size), generator=generator)
    blurry = None
    for index, stage in enumerate(stages):
        if index > 0:
            blurry = F.interpolate(sample, size=stage.size, mode="bilinear", align_corners=False)
            noise = randn_tensor(blurry.shape, generator=generator)
            sample = pipe.scheduler.add_noise(blurry, noise, pipe.scheduler.start_timesteps[stage.scale])
        pipe.scheduler.set_timesteps(steps[stage.scale], scale=stage.scale)
        for t in pipe.scheduler.timesteps.tolist():
            noise_pred = pipe.predict_noise(sample, t, stage.scale, blurry)
            step = pipe.scheduler.step(noise_pred, t, sample, blurry_sample=blurry, generator=generator)
            sample = step.prev_sample
    return (sample / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("num_inference_steps", [None, 4])
def test_the_default_path_is_unchanged_bit_for_bit_trained(num_inference_steps):
    pipe = tiny_pipeline()
    expected = reference_generation(pipe, 3, num_inference_steps)
    images = pipe(generator=torch.Generator().manual_seed(3), output_type="pt", num_inference_steps=num_inference_steps)
    assert torch.equal(images.images, expected)
    generator = torch.Generator().manual_seed(3)
    explicit = pipe(generator=generator, output_type="pt", num_inference_steps=num_inference_steps, tileable=False)
    assert torch.equal(explicit.images, expected)


def test_the_default_path_is_unchanged_bit_for_bit_training_free(coffee):
    expected = reference_generation(coffee, 5)
    assert torch.equal(coffee(generator=torch.Generator().manual_seed(5), output_type="pt").images, expected)


def test_tileable_changes_the_sample_and_is_deterministic():
    pipe = tiny_pipeline()
    first = pipe(generator=torch.Generator().manual_seed(0), output_type="pt", tileable=True).images
    again = pipe(generator=torch.Generator().manual_seed(0), output_type="pt", tileable=True).images
    plain = pipe(generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.equal(first, again)
    assert not torch.equal(first, plain)
    # the model's padding is restored after the call
    assert {conv.padding_mode for conv in pipe.denoiser.modules() if isinstance(conv, torch.nn.Conv2d)} == {"zeros"}


def test_wrap_interpolate_treats_the_image_as_a_torus():
    image = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    doubled = wrap_interpolate(image, (24, 32))
    # shifting the input by one pixel shifts the 2x output by two: no border anywhere
    shifted = wrap_interpolate(image.roll((1, 3), (-2, -1)), (24, 32))
    assert torch.allclose(shifted, doubled.roll((2, 6), (-2, -1)), atol=1e-6)
    inside = F.interpolate(image, size=(24, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(doubled[..., 2:-2, 2:-2], inside[..., 2:-2, 2:-2], atol=1e-6)  # bilinear inside


def test_tileable_must_be_a_bool(tiny_pipe):
    with pytest.raises(ValueError, match="tileable must be True or False"):
        tiny_pipe(tileable="yes")


def test_a_denoiser_without_circular_padding_is_refused(tiny_pipe):
    with tiny_pipe.wrap_around(False):  # nothing to switch
        pass
    tiny_pipe.__dict__["denoiser"] = torch.nn.Identity()  # a denoiser that cannot wrap around
    with pytest.raises(ValueError, match="circular_padding"), tiny_pipe.wrap_around(True):
        pass
