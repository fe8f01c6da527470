"""SinDDMInpaintPipeline: inpainting keeps every pixel beyond the dilated hole and fills the hole; outpainting keeps
the image as a block and fills the margins with the training image's patches; the known pixels at every stage;
RePaint resampling; training-free pipelines; bad input. The known_pixels helpers they share are tested here too."""

import numpy as np
import pytest
import torch
from conftest import as_float, fast_shipped_pipe, quiet_pipe, seeded, tiny_pipeline
from PIL import Image
from skimage import data

from sinddm_pipeline import SinDDMPipeline, SinDDMScheduler
from sinddm_pipeline.known_pixels import KnownPixels, binary_mask, blend, feathered_weight, resize
from sinddm_pipeline.metrics.patches import patch_swd
from sinddm_pipeline.pipeline_sinddm_inpaint import SinDDMInpaintPipeline
from sinddm_pipeline.retargeting import Stage

TINY_STEPS = [10, 4]  # the tiny pipelines' two scales, strided: the properties tested do not need every step


@pytest.fixture(scope="module")
def tiny():
    """An untrained dim-4 model on a synthetic 96x72 image (2 scales)."""
    return quiet_pipe(SinDDMInpaintPipeline, tiny_pipeline(dim=4))


@pytest.fixture(scope="module")
def hubble():
    """The shipped model with the fast settings (second-order solver, steps [10, 6, 5, 4, 3]): ~2 s a sample."""
    return fast_shipped_pipe(SinDDMInpaintPipeline)


def square_mask(size, box):
    mask = Image.new("L", size)
    mask.paste(255, box)
    return mask


def hole_and_beyond(shape, box, radius):
    """The hole (bool) and the pixels at least ``radius`` from it (kept exactly) for a (left, top, right, bottom)
    box."""
    hole = np.zeros(shape, dtype=bool)
    hole[box[1] : box[3], box[0] : box[2]] = True
    return hole, feathered_weight(hole, radius) == 0


# ---------------------------------------------------------------------------------------------------------------
# the shared helpers


def test_feathered_weight_falls_linearly_from_the_mask_to_zero_at_the_radius():
    mask = np.zeros((30, 30), dtype=bool)
    mask[10:20, 10:20] = True
    weight = feathered_weight(mask, 8)
    assert (weight[mask] == 1).all()
    assert weight[15, 24] == pytest.approx(1 - 5 / 8)  # 5 px to the right of the mask
    assert weight[15, 28] == 0 and weight[0, 0] == 0
    assert np.array_equal(feathered_weight(mask, 0), mask.astype(float))


def test_blend_is_the_original_exactly_where_the_weight_is_zero():
    generated, original = torch.rand(2, 3, 8, 8), torch.rand(1, 3, 8, 8) * 2 - 1
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., :4] = torch.linspace(1, 0.1, 4)
    out = blend(generated, original, weight)
    assert torch.equal(out[..., 4:], original[..., 4:].expand(2, -1, -1, -1))
    assert torch.allclose(out[..., 0], generated[..., 0])


def test_known_pixels_never_take_values_from_the_hole():
    image = torch.rand(1, 3, 40, 60) * 2 - 1
    known = torch.ones(40, 60, dtype=torch.bool)
    known[:, 30:] = False
    garbage = image.clone()
    garbage[..., 30:] = 1.0  # whatever lies in the hole
    stages = [Stage(0, (20, 30)), Stage(1, (40, 60))]
    a, b = KnownPixels.build(image, known, stages), KnownPixels.build(garbage, known, stages)
    for index in range(2):
        assert torch.equal(a.weights[index] * a.images[index], b.weights[index] * b.images[index])
    assert torch.equal(a.weights[1][0, 0], known.float())  # the output's stage: exactly the known pixels
    assert a.weights[0][..., :14].all() and not a.weights[0][..., 15:].any()  # coarser: the hole grows by <= 1 px
    estimate = torch.zeros(1, 3, 40, 60)
    assert torch.equal(a.keep(estimate, 1)[..., :30], image[..., :30]) and not a.keep(estimate, 1)[..., 30:].any()
    assert resize(image, (40, 60)) is image


def test_binary_mask_refuses_an_empty_or_full_mask():
    assert binary_mask(np.array([[0.0, 0.6]])).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="mask_image: no pixel"):
        binary_mask(np.full((4, 4), 0.2))
    with pytest.raises(ValueError, match="mask_image: the mask covers the whole image"):
        binary_mask(np.ones((4, 4)))


# ---------------------------------------------------------------------------------------------------------------
# inpainting and outpainting on the shipped model


def test_inpainting_keeps_the_pixels_beyond_the_dilated_hole_and_fills_it_at_every_scale(hubble):
    image = hubble.pyramid.pil(hubble.pyramid.num_scales - 1)  # 239x208
    box = (80, 60, 160, 140)
    stage_outputs = []

    def record(pipe, step_index, timestep, kwargs):
        if timestep == 0:  # the last step of a stage: its output
            stage_outputs.append(kwargs["sample"].clone())
        return kwargs

    output = hubble(image, mask_image=square_mask(image.size, box), generator=seeded(), callback_on_step_end=record)
    result = output.images[0]
    assert result.size == image.size
    change = np.abs(as_float(result) - as_float(image))
    hole, beyond = hole_and_beyond(change.shape[:2], box, 8)
    assert beyond.mean() > 0.6
    assert change[beyond].max() <= 1.0  # unchanged (within 1/255)
    assert change[hole].mean() > 5.0  # filled with new content: measured 12.5/255 on average

    # every stage ends with the known pixels of its size (the output's within float rounding)
    stages = hubble.plan()
    known = KnownPixels.build(
        torch.from_numpy(as_float(image) / 127.5 - 1).permute(2, 0, 1)[None].float(), torch.from_numpy(beyond), stages
    )
    assert len(stage_outputs) == len(stages) == 5
    for index, sample in enumerate(stage_outputs):
        weight = known.weights[index]
        assert weight.mean() > 0.4
        assert (weight * (sample - known.images[index])).abs().max() < 1e-5


def margin_strips(image: np.ndarray, margin: int) -> list[np.ndarray]:
    """The four margins of an outpainted (H, W, 3) canvas as strips, the top and bottom ones turned upright."""
    return [
        image[:, :margin],
        image[:, -margin:],
        image[:margin].transpose(1, 0, 2),
        image[-margin:].transpose(1, 0, 2),
    ]


def mean_strip_swd(images: np.ndarray, margin: int, reference: Image.Image) -> float:
    """The patch SWD to the training image of every margin strip of every image, averaged."""
    values = [
        patch_swd(torch.from_numpy(np.ascontiguousarray(strip)).permute(2, 0, 1)[None], reference).mean
        for image in images
        for strip in margin_strips(image, margin)
    ]
    return float(np.mean(values))


def test_outpainting_keeps_the_image_and_fills_the_margins_like_a_free_sample(hubble):
    """Margins of 32 px on every side (a 303x272 canvas); the margins' patches are compared with those of free
    samples of the same canvas size, at the same places. Measured (seeds 0, 1): outpainted 0.0260, free 0.0261
    (free samples at the training size: 0.0252; over seeds 0-3: 0.0253, 0.0254, 0.0257)."""
    image = hubble.pyramid.pil(hubble.pyramid.num_scales - 1)
    margin = 32
    generators = [seeded(0), seeded(1)]
    canvas = hubble(image, top=margin, bottom=margin, left=margin, right=margin, batch_size=2, generator=generators)
    assert canvas.images[0].size == (image.width + 2 * margin, image.height + 2 * margin)
    outpainted = np.stack([np.asarray(result) for result in canvas.images])
    for result in outpainted:
        assert np.array_equal(result[margin:-margin, margin:-margin], np.asarray(image))  # the image, exactly

    free_pipe = SinDDMPipeline.from_pipe(hubble)
    free_pipe.set_progress_bar_config(disable=True)
    height, width = outpainted.shape[1:3]
    free = free_pipe(
        height=height,
        width=width,
        batch_size=2,
        generator=[seeded(0), seeded(1)],
        num_inference_steps=hubble._fast_num_inference_steps,
    ).images
    free = np.stack([np.asarray(sample) for sample in free])
    outpainted_swd, free_swd = mean_strip_swd(outpainted, margin, image), mean_strip_swd(free, margin, image)
    assert outpainted_swd <= 1.25 * free_swd, (outpainted_swd, free_swd)


# ---------------------------------------------------------------------------------------------------------------
# options, determinism, training-free


def test_undo_step_noises_a_steps_result_back_to_the_steps_timestep():
    scheduler = SinDDMScheduler(scale_sizes=[[48, 64], [67, 90]], rescale_losses=[1.087], solver_order=2)
    scheduler.set_timesteps(10, scale=1)
    t = int(scheduler.timesteps[2])
    ratio = scheduler.alphas_cumprod[t] / scheduler.alphas_cumprod[scheduler.previous_timestep(t)]
    scheduler._previous_estimate = (t, torch.zeros(1))
    jumped = scheduler.undo_step(torch.ones(1, 3, 200, 200), t, generator=seeded())
    assert jumped.mean().item() == pytest.approx(ratio.sqrt().item(), abs=0.01)
    assert jumped.std().item() == pytest.approx((1 - ratio).sqrt().item(), rel=0.02)
    assert scheduler._previous_estimate is None  # the redone step starts a new multistep history


def test_resampling_redoes_every_step_of_the_coarsest_scale_but_its_last(tiny, monkeypatch):
    image = tiny.pyramid.pil(1)
    mask = square_mask(image.size, (30, 20, 60, 50))
    calls = []
    original = tiny.predict_noise
    monkeypatch.setattr(tiny, "predict_noise", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    plain = tiny(image, mask_image=mask, num_inference_steps=TINY_STEPS, generator=seeded(), output_type="np")
    steps = len(calls)
    assert steps == sum(TINY_STEPS)
    calls.clear()
    resampled = tiny(
        image, mask_image=mask, resample_steps=2, num_inference_steps=TINY_STEPS, generator=seeded(), output_type="np"
    )
    assert len(calls) == steps + 2 * (TINY_STEPS[0] - 1)  # the DDPM steps of scale 0 but t = 0
    assert not np.allclose(plain.images, resampled.images)
    change = np.abs(resampled.images[0] - np.asarray(image) / 255.0)
    _, beyond = hole_and_beyond(change.shape[:2], (30, 20, 60, 50), 8)
    assert change[beyond].max() <= 1 / 255


def test_the_same_seed_gives_the_same_result_and_another_seed_another(tiny):
    image = tiny.pyramid.pil(1)
    mask = square_mask(image.size, (30, 20, 60, 50))

    def run(seed, **kwargs):
        return tiny(image, num_inference_steps=TINY_STEPS, generator=seeded(seed), output_type="np", **kwargs).images

    assert np.array_equal(run(0, mask_image=mask), run(0, mask_image=mask))
    assert not np.array_equal(run(0, mask_image=mask), run(1, mask_image=mask))
    assert np.array_equal(run(3, left=20, top=10), run(3, left=20, top=10))
    assert not np.array_equal(run(3, left=20, top=10), run(4, left=20, top=10))


def test_batches_and_output_types(tiny):
    image = tiny.pyramid.pil(1)
    out = tiny(image, right=16, batch_size=2, num_inference_steps=TINY_STEPS, output_type="pt", return_dict=False)[0]
    assert out.shape == (2, 3, 72, 112) and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out[0], out[1])


def test_a_training_free_pipeline_inpaints_and_outpaints():
    pipe = quiet_pipe(SinDDMInpaintPipeline, SinDDMPipeline.from_image(data.coffee(), max_pixels=6000))
    image = pipe.pyramid.pil(pipe.pyramid.num_scales - 1)  # 94x63
    box = (35, 20, 60, 45)
    filled = pipe(image, mask_image=square_mask(image.size, box), feather_radius=4, generator=seeded()).images[0]
    change = np.abs(as_float(filled) - as_float(image))
    hole, beyond = hole_and_beyond(change.shape[:2], box, 4)
    assert change[beyond].max() <= 1.0 and change[hole].mean() > 2.0
    wider = pipe(image, left=20, generator=seeded()).images[0]
    assert wider.size == (image.width + 20, image.height)
    assert np.array_equal(np.asarray(wider)[:, 20:], np.asarray(image))


def test_a_large_image_is_capped_with_its_margins():
    pipe = quiet_pipe(SinDDMInpaintPipeline, tiny_pipeline(dim=4))
    big = Image.new("RGB", (400, 300), "teal")  # 120,000 px: resized to 258x193
    out = pipe(big, left=100, num_inference_steps=TINY_STEPS, generator=seeded()).images[0]
    assert out.size == (258 + 64, 193)  # the margin scaled with the image: round(100 * 258 / 400)


# ---------------------------------------------------------------------------------------------------------------
# bad input


BAD_INPUTS = [
    ({"mask_image": np.zeros((72, 96))}, "mask_image: the mask is zero everywhere"),
    ({"mask_image": np.full((72, 96), 0.3)}, "mask_image: no pixel"),
    ({"mask_image": np.ones((72, 96))}, "mask_image: the mask covers the whole image"),
    ({"mask_image": np.pad(np.ones((60, 90)), ((6, 6), (3, 3)))}, "covers the whole image, so no pixel is kept"),
    ({"mask_image": "mask.png"}, "mask_image: got a path"),
    ({}, "Give mask_image .* or margins .* got neither"),
    ({"mask_image": np.ones((8, 8)), "left": 4}, "not both"),
    ({"left": -1}, "left must be an int >= 0"),
    ({"top": 1.5}, "top must be an int >= 0"),
    ({"right": True}, "right must be an int >= 0"),
    ({"bottom": 73}, r"bottom must be an int in \[0, 72\]"),
    ({"right": 97}, r"right must be an int in \[0, 96\]"),
    ({"left": 10**9}, r"left must be an int in \[0, 96\]"),
    ({"left": 4, "feather_radius": -1}, r"feather_radius must be an int in \[0, 64\]"),
    ({"left": 4, "feather_radius": 65}, r"feather_radius must be an int in \[0, 64\]"),
    ({"left": 4, "resample_steps": 21}, r"resample_steps must be an int in \[0, 20\]"),
    ({"left": 4, "resample_steps": 1.0}, r"resample_steps must be an int in \[0, 20\]"),
    ({"left": 4, "batch_size": 0}, "batch_size must be an int >= 1"),
    ({"left": 4, "output_type": "jpg"}, "output_type must be one of"),
    ({"left": 4, "num_inference_steps": 1}, "num_inference_steps must be an int >= 2"),
    ({"left": 4, "generator": 0}, "generator must be a torch.Generator"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUTS, ids=[message for _, message in BAD_INPUTS])
def test_bad_input_is_a_value_error_naming_the_argument(tiny, kwargs, message):
    image = kwargs.pop("image", tiny.pyramid.pil(1))  # 96x72
    with pytest.raises(ValueError, match=message):
        tiny(image, **kwargs)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("image.png", "image: got a path"),
        ([[0, 1], [1, 0]], "image: got a list"),
        (np.zeros((4, 4, 3), dtype=np.uint8), "at least 8 px a side"),
        (np.full((20, 20, 3), 2.0), r"float values must lie in \[0, 1\]"),
    ],
)
def test_bad_images_are_refused(tiny, image, message):
    with pytest.raises(ValueError, match=message):
        tiny(image, left=4)
    with pytest.raises(ValueError, match=message):
        tiny(image, mask_image=np.eye(20))
