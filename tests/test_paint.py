"""SinDDMPaintPipeline: paint-to-image follows the painting's layout and colours at the right size; editing keeps every
pixel beyond the dilated mask and regenerates the region; determinism; training-free pipelines; bad input."""

import numpy as np
import pytest
import torch
from conftest import as_float, fast_shipped_pipe, quiet_pipe, seeded, tiny_pipeline
from PIL import Image, ImageDraw
from skimage import data

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.known_pixels import feathered_weight
from sinddm_pipeline.pipeline_sinddm_paint import SinDDMPaintPipeline, paint_size

TINY_STEPS = [10, 4]


@pytest.fixture(scope="module")
def tiny():
    """An untrained dim-4 model on a synthetic 96x72 image (2 scales)."""
    return quiet_pipe(SinDDMPaintPipeline, tiny_pipeline(dim=4))


@pytest.fixture(scope="module")
def hubble():
    """The shipped model with the fast settings (second-order solver, steps [10, 6, 5, 4, 3])."""
    return fast_shipped_pipe(SinDDMPaintPipeline)


def low(image: Image.Image, size=(24, 12)) -> np.ndarray:
    """The image averaged down to ``size`` (box filter): its layout and colours."""
    return as_float(image.resize(size, Image.BOX))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.sum(-1).ravel(), b.sum(-1).ravel())[0, 1])


def galaxy_painting(pipe) -> Image.Image:
    """Clip-art in the training image's own colours: its coarsest scale's median (the dark sky) with three discs in
    the colour of its 20 brightest coarse pixels (the galaxies), 2:1."""
    coarse = np.asarray(pipe.pyramid.pil(0)).reshape(-1, 3)
    sky = tuple(int(v) for v in np.median(coarse, axis=0))
    galaxy = tuple(int(v) for v in coarse[np.argsort(coarse.sum(axis=1))[-20:]].mean(axis=0))
    painting = Image.new("RGB", (120, 60), sky)
    draw = ImageDraw.Draw(painting)
    for x, y in ((25, 20), (70, 40), (100, 15)):
        draw.ellipse((x - 8, y - 8, x + 8, y + 8), fill=galaxy)
    return painting


# ---------------------------------------------------------------------------------------------------------------
# paint-to-image


def test_paint_to_image_follows_the_paintings_layout_and_colours(hubble):
    """Measured (seeds 0, 1), on 24x12 box-filtered images: mean |output - painting| 9.6-10.3 / 255 at start_scale 1
    and 5.7-5.8 at start_scale 2, a free sample's 15.5; correlation with the painting 0.84 (start 1), 0.97
    (start 2), a free sample's 0.04-0.09."""
    painting = galaxy_painting(hubble)
    result = hubble(painting, generator=seeded()).images[0]
    assert result.size == (315, 158)  # 2:1 with the training image's 239 x 208 = 49,712 pixels
    free_pipe = SinDDMPipeline.from_pipe(hubble)
    free_pipe.set_progress_bar_config(disable=True)
    free = free_pipe(height=158, width=315, generator=seeded(), num_inference_steps=hubble._fast_num_inference_steps)
    target = low(painting)
    painted_error, free_error = np.abs(low(result) - target).mean(), np.abs(low(free.images[0]) - target).mean()
    assert painted_error < 12.0 and painted_error < 0.75 * free_error, (painted_error, free_error)
    assert correlation(low(result), target) > 0.7 and correlation(low(free.images[0]), target) < 0.3
    finer = hubble(painting, start_scale=2, generator=seeded()).images[0]  # a finer start keeps more of the painting
    assert np.abs(low(finer) - target).mean() < painted_error


def test_paint_sizes(tiny):
    painting = Image.new("RGB", (50, 20), "orange")

    def size(**kwargs):
        return tiny(painting, num_inference_steps=TINY_STEPS, generator=seeded(), **kwargs).images[0].size

    assert paint_size((50, 20), (72, 96)) == (53, 131)  # 5:2 with 72 x 96 = 6,912 pixels
    assert size() == (131, 53)
    assert size(height=40) == (100, 40)  # one side alone keeps the painting's aspect ratio
    assert size(width=60) == (60, 24)
    assert size(height=80, width=90) == (90, 80)


# ---------------------------------------------------------------------------------------------------------------
# editing


def test_editing_keeps_the_pixels_beyond_the_dilated_mask_and_regenerates_the_region(hubble):
    image = hubble.pyramid.pil(hubble.pyramid.num_scales - 1)
    edited = image.copy()
    edited.paste(image.crop((20, 20, 60, 60)), (150, 120))  # a region copied elsewhere
    box = (150, 120, 190, 160)
    mask = Image.new("L", image.size)
    mask.paste(255, box)
    result = hubble(edited, mask_image=mask, generator=seeded()).images[0]
    assert result.size == image.size
    change = np.abs(as_float(result) - as_float(edited))
    region = np.zeros(change.shape[:2], dtype=bool)
    region[box[1] : box[3], box[0] : box[2]] = True
    beyond = feathered_weight(region, 8) == 0
    assert change[beyond].max() <= 1.0  # unchanged (within 1/255)
    assert change[region].mean() > 5.0  # regenerated: measured 11.4/255 on average


def test_the_same_seed_gives_the_same_result_and_another_seed_another(tiny):
    image = tiny.pyramid.pil(1)
    mask = np.zeros((72, 96))
    mask[20:50, 30:60] = 1

    def run(seed, **kwargs):
        return tiny(image, num_inference_steps=TINY_STEPS, generator=seeded(seed), output_type="np", **kwargs).images

    assert np.array_equal(run(0), run(0)) and not np.array_equal(run(0), run(1))
    assert np.array_equal(run(2, mask_image=mask), run(2, mask_image=mask))
    assert not np.array_equal(run(2, mask_image=mask), run(3, mask_image=mask))


def test_a_training_free_pipeline_paints_and_edits():
    pipe = quiet_pipe(SinDDMPaintPipeline, SinDDMPipeline.from_image(data.coffee(), max_pixels=6000))
    image = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # 94x63
    painting = image.quantize(6).convert("RGB").resize((24, 16), Image.BOX)  # a rough painting in its colours
    result = pipe(painting, generator=seeded()).images[0]
    assert result.size == (94, 63)
    free = SinDDMPipeline.from_pipe(pipe)(generator=seeded()).images[0]
    painted_error = np.abs(low(result, (24, 16)) - as_float(painting)).mean()  # measured 10.1 / 255
    assert painted_error < 0.6 * np.abs(low(free, (24, 16)) - as_float(painting)).mean()  # measured 23.7
    edited = image.copy()
    edited.paste(image.crop((0, 0, 30, 20)), (30, 20))  # a corner copied onto the cup
    mask = np.zeros((63, 94), dtype=bool)
    mask[20:40, 30:60] = True
    result = pipe(edited, mask_image=mask, feather_radius=4, generator=seeded()).images[0]
    change = np.abs(as_float(result) - as_float(edited))
    assert change[feathered_weight(mask, 4) == 0].max() <= 1.0 and change[mask].mean() > 5.0  # measured 15.0


# ---------------------------------------------------------------------------------------------------------------
# bad input


BAD_INPUTS = [
    ({"start_scale": 0}, r"start_scale must be an int in \[1, 1\]"),
    ({"start_scale": 2}, r"start_scale must be an int in \[1, 1\]"),
    ({"start_scale": 1.0}, r"start_scale must be an int in \[1, 1\]"),
    ({"start_scale": True}, r"start_scale must be an int in \[1, 1\]"),
    ({"mask_image": np.zeros((72, 96))}, "mask_image: the mask is zero everywhere"),
    ({"mask_image": np.ones((72, 96))}, "mask_image: the mask covers the whole image"),
    ({"mask_image": np.pad(np.ones((60, 90)), ((6, 6), (3, 3)))}, "covers the whole image, so no pixel is kept"),
    ({"mask_image": [[1, 0]]}, "mask_image: got a list"),
    ({"mask_image": np.eye(72), "height": 50}, "height and width are for paint-to-image"),
    ({"height": 0}, "height must be a positive int"),
    ({"width": 2.5}, "width must be a positive int"),
    ({"height": 4, "width": 4}, "too small"),
    ({"height": 5000, "width": 5000}, "at most 16,777,216"),
    ({"feather_radius": -1}, r"feather_radius must be an int in \[0, 64\]"),
    ({"feather_radius": 100}, r"feather_radius must be an int in \[0, 64\]"),
    ({"batch_size": -1}, "batch_size must be an int >= 1"),
    ({"output_type": "jpg"}, "output_type must be one of"),
    ({"num_inference_steps": [3]}, "num_inference_steps must be an int >= 2"),
    ({"generator": [torch.Generator()] * 2}, "one per image"),
    ({"image": "painting.png"}, "image: got a path"),
    ({"image": np.zeros((5, 40, 3), dtype=np.uint8)}, "at least 8 px a side"),
    ({"image": np.zeros((3, 40, 40))}, "channels-last"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUTS, ids=[message for _, message in BAD_INPUTS])
def test_bad_input_is_a_value_error_naming_the_argument(tiny, kwargs, message):
    image = kwargs.pop("image", tiny.pyramid.pil(1))
    with pytest.raises(ValueError, match=message):
        tiny(image, **kwargs)
