"""The pyramid (SPEC §1) against the official implementation, and its edge cases."""

import numpy as np
import pytest
from conftest import shared_path
from golden import golden_meta, golden_tensors
from PIL import Image

from sinddm_pipeline.pyramid import build_pyramid, capped_size, rescale_loss, scale_sizes


@pytest.fixture(scope="module")
def balloons():
    return build_pyramid(Image.open(shared_path("images", "balloons.png")))


def test_sizes_factor_and_losses_match_golden(balloons):
    meta = golden_meta()
    assert balloons.sizes == [tuple(size) for size in meta["sizes_wh"]]
    assert balloons.num_scales == meta["n_scales"]
    assert balloons.scale_factor == pytest.approx(meta["scale_factor"], rel=1e-12)
    assert balloons.rescale_losses == pytest.approx(meta["rescale_losses"], rel=1e-12)


def test_pyramid_and_blurry_images_match_golden_within_one_grey_level(balloons):
    golden = golden_tensors()
    assert balloons.blurry[0] is None
    for i in range(balloons.num_scales):
        ours = np.asarray(balloons.images[i]).astype(int)
        assert np.abs(ours - golden[f"pyramid_{i}"].numpy().astype(int)).max() <= 1
        if i > 0:
            ours = np.asarray(balloons.blurry[i]).astype(int)
            assert np.abs(ours - golden[f"blurry_{i}"].numpy().astype(int)).max() <= 1


def test_rescale_loss_keeps_the_uint8_wrap_around():
    a = Image.fromarray(np.zeros((2, 2, 3), np.uint8))
    b = Image.fromarray(np.ones((2, 2, 3), np.uint8))
    # 0 - 1 wraps to 255 in uint8: norm of twelve 255s over 12 elements.
    assert rescale_loss(a, b) == pytest.approx(np.sqrt(12 * 255**2) / 12)
    assert rescale_loss(b, a) == pytest.approx(np.sqrt(12) / 12)


def test_large_images_are_capped_at_50000_pixels():
    width, height = capped_size(1000, 872)
    assert width * height <= 50_000
    assert (width, height) == (239, 208)
    assert capped_size(248, 186) == (248, 186)
    pyramid = build_pyramid(Image.new("RGB", (1000, 872), "gray"))
    assert pyramid.sizes[-1] == (239, 208)


def test_coarsest_scale_is_clamped_and_short_side_sets_the_count():
    sizes, factor = scale_sizes(400, 100)  # very wide: coarsest short side clamped to 42
    assert min(sizes[0]) == 42
    assert sizes[-1] == (400, 100)
    assert 1.2 < factor < 1.7


@pytest.mark.parametrize("size", [(40, 40), (60, 44)])
def test_too_small_images_are_refused(size):
    with pytest.raises(ValueError, match="too small"):
        build_pyramid(Image.new("RGB", size))


def test_grayscale_input_gives_rgb_scales():
    pyramid = build_pyramid(Image.new("L", (120, 90), 128))
    assert all(image.mode == "RGB" for image in pyramid.images)
