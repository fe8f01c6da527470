"""ROI-guided generation (SPEC §6): the copied region shows up in the target boxes; stages, box scaling, bad boxes."""

import numpy as np
import pytest
import torch
from conftest import synthetic_image, tiny_pipeline, train_tiny

from sinddm_pipeline import SinDDMPipeline, SinDDMScheduler
from sinddm_pipeline.retargeting import Stage
from sinddm_pipeline.roi import ROIGuidance, check_box, paste_patch, scale_box

SOURCE = (16, 40, 32, 32)  # (y, x, h, w) in the 96x72 training image: a pink disc on a gradient
TARGETS = [(4, 6, 32, 32), (36, 100, 32, 32)]  # in a 144x72 output (width_scale=1.5); the second beyond x = 96


@pytest.fixture(scope="module")
def trained_pipe():
    """A dim-8 model of a 96x72 synthetic image (2 scales: 64x48, 96x72), both trained for 300 steps (~6-15 s)."""
    pipe = tiny_pipeline(synthetic_image(96, 72, seed=3), dim=8)
    return train_tiny(pipe, steps=300, scales=[0, 1])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (h, w, 3) patches, each channel centred on its own mean."""
    a, b = a - a.mean((0, 1)), b - b.mean((0, 1))
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def overlaps(box, other):
    (y, x, h, w), (oy, ox, oh, ow) = box, other
    return y < oy + oh and oy < y + h and x < ox + ow and ox < x + w


@pytest.mark.parametrize("solver_order", [1, 2])
def test_target_boxes_correlate_with_the_source_patch_far_more_than_other_boxes(trained_pipe, solver_order):
    """Measured (batch of 4, seeds 0-2): Pearson correlation with the source patch 0.44-0.63 in the 8 target boxes,
    vs mean 0.00-0.04 (95th percentile 0.21-0.26, max 0.29-0.46) over the 130 other 32x32 boxes (stride 4) that do
    not overlap a target; without ROI arguments the target boxes correlate like the others (mean -0.01-0.04).
    The second-order solver (solver_order=2) keeps it (seed 0: 0.45-0.56 in the targets)."""
    scheduler = SinDDMScheduler.from_config(trained_pipe.scheduler.config, solver_order=solver_order)
    trained_pipe = SinDDMPipeline(denoiser=trained_pipe.denoiser, scheduler=scheduler, pyramid=trained_pipe.pyramid)
    trained_pipe.set_progress_bar_config(disable=True)
    y, x, h, w = SOURCE
    patch = np.asarray(trained_pipe.pyramid.pil(1), dtype=np.float64)[y : y + h, x : x + w]
    kwargs = {"batch_size": 4, "width_scale": 1.5, "output_type": "np"}
    guided = trained_pipe(
        generator=torch.Generator().manual_seed(0), roi_source_box=SOURCE, roi_target_boxes=TARGETS, **kwargs
    ).images
    plain = trained_pipe(generator=torch.Generator().manual_seed(0), **kwargs).images
    assert guided.shape == (4, 72, 144, 3)

    def box_correlations(images, boxes):
        return [
            correlation(255 * image[by : by + bh, bx : bx + bw], patch) for image in images for by, bx, bh, bw in boxes
        ]

    others = [
        (by, bx, h, w)
        for by in range(0, 72 - h + 1, 4)
        for bx in range(0, 144 - w + 1, 4)
        if not any(overlaps((by, bx, h, w), target) for target in TARGETS)
    ]
    targets, elsewhere = box_correlations(guided, TARGETS), box_correlations(guided, others)
    assert len(others) > 50
    assert min(targets) > 0.35, targets
    assert np.mean(elsewhere) < 0.15 and min(targets) > np.percentile(elsewhere, 95), (targets, np.mean(elsewhere))
    assert np.mean(targets) > np.mean(elsewhere) + 0.35
    assert np.mean(box_correlations(plain, TARGETS)) < 0.2  # it is the guidance, not the image's own statistics


def test_guidance_acts_on_every_step_of_every_stage_but_the_finest_scale(monkeypatch):
    pipe = tiny_pipeline(dim=4)  # 2 scales: 48x64, 72x96
    calls = []
    original = ROIGuidance.apply

    def spy(self, estimate, stage_index, scale):
        calls.append((stage_index, scale, tuple(estimate.shape[-2:])))
        return original(self, estimate, stage_index, scale)

    monkeypatch.setattr(ROIGuidance, "apply", spy)
    pipe(roi_source_box=(10, 10, 20, 20), roi_target_boxes=[(0, 0, 20, 20)], output_type="np")
    assert calls == [(0, 0, (48, 64))] * pipe.scheduler.start_timesteps[0]

    calls.clear()  # 2x: extra stages at the finest model scale are not guided either
    pipe(roi_source_box=(10, 10, 20, 20), roi_target_boxes=[(100, 150, 40, 40)], height=144, width=192)
    assert len(pipe.plan(height=144, width=192)) == 3  # 64x85, 96x128, 144x192 (an extra stage at scale 1)
    assert calls == [(0, 0, (64, 85))] * pipe.scheduler.start_timesteps[0]


def test_identity_guidance_changes_nothing():
    """The guided path (x0, deblur, then step with pred_original_sample) is the scheduler's own step, bit for bit."""
    pipe = tiny_pipeline(dim=4)
    stage = pipe.plan()[1]
    blurry = torch.rand(1, 3, *stage.size) * 2 - 1
    start = pipe.scheduler.add_noise(blurry, torch.randn(blurry.shape), pipe.scheduler.start_timesteps[1])
    with torch.no_grad():
        plain = pipe.denoise_stage(start, stage.scale, blurry=blurry)
        identity = pipe.estimate_guidance(lambda estimate, t: estimate, stage.scale)
        guided = pipe.denoise_stage(start, stage.scale, blurry=blurry, guidance=identity)
    assert torch.equal(plain, guided)


def test_no_roi_arguments_give_the_usual_images():
    pipe = tiny_pipeline(dim=4)
    a = pipe(generator=torch.Generator().manual_seed(3), output_type="np").images
    b = pipe(generator=torch.Generator().manual_seed(3), output_type="np", roi_source_box=None).images
    np.testing.assert_array_equal(a, b)


def test_paste_patch_blends_0_8_source_into_the_box_only():
    estimate = torch.full((2, 3, 10, 12), -1.0)
    patch = torch.arange(6.0).reshape(1, 1, 2, 3).expand(1, 3, 2, 3)
    out = paste_patch(estimate, patch, (2, 3, 4, 6))
    resized = patch.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest, x2
    torch.testing.assert_close(out[:, :, 2:6, 3:9], (0.8 * resized + 0.2 * -1.0).expand(2, -1, -1, -1))
    outside = torch.ones_like(out, dtype=torch.bool)
    outside[:, :, 2:6, 3:9] = False
    assert (out[outside] == -1).all() and (estimate == -1).all()  # the input is not modified


def test_boxes_are_scaled_like_the_reference():
    """int(v / r^k) for every value, k = scales below the finest (source) or stages before the last (targets)."""
    sizes, r = [(48, 64), (67, 90), (94, 126), (133, 177), (186, 248)], 1.40303  # balloons
    images = [torch.zeros(1, 3, h, w) for h, w in sizes]
    stages = [Stage(scale=i, size=size) for i, size in enumerate(sizes)]
    source, target = (50, 100, 40, 60), (120, 30, 50, 70)
    roi = ROIGuidance.build(source, [target], images, r, stages)
    for scale, patch in enumerate(roi.source_patches):
        factor = r ** (4 - scale)
        assert patch.shape[-2:] == (int(40 / factor), int(60 / factor))
    for index in range(4):
        assert roi.stage_boxes[index] == [tuple(int(v / r ** (4 - index)) for v in target)]
    assert roi.stage_boxes[4] is None and not roi.guides(4)
    # Kept inside the image and at least 1 px at coarse scales.
    assert scale_box((180, 240, 6, 8), r**4, 48, 64) == (46, 61, 1, 2)


S, T = (0, 0, 10, 10), [(0, 0, 10, 10)]  # valid boxes for the 96x72 training image and output


@pytest.mark.parametrize(
    ("source", "targets", "message"),
    [
        (S, None, "roi_source_box needs roi_target_boxes"),
        (None, T, "roi_target_boxes needs roi_source_box"),
        ((70, 0, 10, 10), T, r"roi_source_box \(70, 0, 10, 10\) leaves the image.*y \+ h <= 72"),
        ((0, -1, 10, 10), T, r"roi_source_box .* leaves the image.*x \+ w <= 96"),
        ((0, 90, 10, 10), T, "roi_source_box .* leaves the image"),
        ((0, 0, 0, 10), T, "roi_source_box is empty"),
        ((0, 0, 10, -3), T, "roi_source_box is empty"),
        ((0.0, 0, 10, 10), T, "roi_source_box must be 4 ints"),
        ((True, 0, 10, 10), T, "roi_source_box must be 4 ints"),
        ((0, 0, 10), T, "roi_source_box must be 4 ints"),
        ("0,0,10,10", T, "roi_source_box must be 4 ints"),
        (S, [(0, 90, 10, 10)], r"roi_target_boxes\[0\] .* leaves the image"),
        (S, [(0, 0, 5, 5), (65, 0, 10, 5)], r"roi_target_boxes\[1\] .* y \+ h <= 72"),
        (S, [(0, 0, 5, 0)], r"roi_target_boxes\[0\] is empty"),
        (S, [], "roi_target_boxes must be a non-empty list"),
        (S, (0, 0, 5, 5), "roi_target_boxes must be a non-empty list"),
        (S, [(0, 0, 5, 5.5)], r"roi_target_boxes\[0\] must be 4 ints"),
        (S, [(0, 0, 5, 5)] * 10**6, "roi_target_boxes has 1,000,000 boxes; at most 64 are allowed"),
        (S, [(0, 0, 5, float("inf"))], r"roi_target_boxes\[0\] must be 4 ints"),
    ],
)
def test_bad_boxes_raise_a_value_error_naming_the_argument_and_the_range(source, targets, message):
    pipe = tiny_pipeline(dim=4)  # training image and output 96x72
    with pytest.raises(ValueError, match=message):
        pipe(roi_source_box=source, roi_target_boxes=targets)


def test_target_boxes_are_checked_against_the_output_size():
    pipe = tiny_pipeline(dim=4)
    box = (10, 100, 20, 40)  # beyond the 96 px training width, inside a 144 px wide output
    with pytest.raises(ValueError, match=r"roi_target_boxes\[0\].*x \+ w <= 96"):
        pipe(roi_source_box=(0, 0, 10, 10), roi_target_boxes=[box])
    images = pipe(roi_source_box=(0, 0, 10, 10), roi_target_boxes=[box], width_scale=1.5, output_type="np").images
    assert images.shape == (1, 72, 144, 3)


def test_numpy_and_torch_integers_are_accepted():
    assert check_box((np.int64(1), torch.tensor(2), 3, np.uint8(4)), "box", 10, 10) == (1, 2, 3, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    pipe = tiny_pipeline(dim=4).to("cuda")
    images = pipe(
        roi_source_box=(10, 10, 20, 20),
        roi_target_boxes=[(40, 60, 20, 30)],
        generator=torch.Generator("cuda").manual_seed(0),
        output_type="pt",
    ).images
    assert images.device.type == "cuda" and images.shape == (1, 3, 72, 96)
