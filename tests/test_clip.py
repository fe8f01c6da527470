"""SinDDMCLIPPipeline (SPEC §7): text guidance with a tiny random transformers CLIP saved to a temporary folder.

The CLIP here is random (hidden size 32, 2 layers, 32 px input, 8 px patches, projection 16) with a character-level
BPE tokenizer, so the tests check the mechanics (modes, masks, determinism, loading, inputs), not image quality.
"""

import doctest
import importlib
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import save_tiny_clip, synthetic_image, tiny_pipeline
from diffusers.utils.torch_utils import randn_tensor
from golden import golden_tensors
from PIL import Image
from transformers import CLIPModel, CLIPTokenizer

from sinddm_pipeline import (
    SinDDMCLIPPipeline,
    SinDDMCLIPPipelineOutput,
    SinDDMPipeline,
    SinDDMPyramid,
    SinDDMScheduler,
)
from sinddm_pipeline.augmentations import augmented_views
from sinddm_pipeline.clip_guidance import CLIPGuide, encode_prompts, normalized_step, thresholded_grad
from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL, MODES
from sinddm_pipeline.pyramid import pil_to_tensor

PROMPT = "fire in the forest"
ROI_BOX = (20, 30, 40, 50)  # inside the 100 x 140 finest scale
FAST = {"num_augmentations": 2}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip")
    save_tiny_clip(folder)
    return folder


@pytest.fixture(scope="module")
def sinddm_dir(tmp_path_factory):
    """A saved untrained dim-4 SinDDM pipeline on a 140 x 100 synthetic image: 3 scales, (47, 66), (69, 96),
    (100, 140), start timesteps 100, 45, 29."""
    folder = tmp_path_factory.mktemp("sinddm")
    tiny_pipeline(synthetic_image(140, 100), dim=4).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_pipe(sinddm_dir, clip_dir):
    """Loaded the documented way: the SinDDM folder plus a local CLIP folder."""
    pipe = SinDDMCLIPPipeline.from_pretrained(sinddm_dir, clip_model_name_or_path=str(clip_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def run(pipe, mode="content", seed=0, output_type="pt", **kwargs):
    kwargs = {**FAST, **kwargs}
    if mode == "roi":
        kwargs.setdefault("roi_box", ROI_BOX)
    return pipe(PROMPT, mode=mode, generator=seeded(seed), output_type=output_type, **kwargs)


def unguided(pipe, **kwargs):
    """SinDDMPipeline with the same components but reblurring off (plain DDPM steps at every scale)."""
    scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, reblurring=False)
    plain = SinDDMPipeline(denoiser=pipe.denoiser, scheduler=scheduler, pyramid=pipe.pyramid)
    plain.set_progress_bar_config(disable=True)
    return plain(generator=seeded(0), output_type="pt", **kwargs).images


def denoise_finest(pipe, start, start_timestep, generator):
    """Noise ``start`` to ``start_timestep`` and denoise it with DDPM steps at the finest scale (no guidance)."""
    finest = pipe.scheduler.num_scales - 1
    noise = randn_tensor(start.shape, generator=generator)
    sample = pipe.scheduler.add_noise(start, noise, start_timestep)
    pipe.scheduler.set_timesteps(scale=finest, start_timestep=start_timestep)
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            eps = pipe.denoiser(sample, t, finest).sample
            sample = pipe.scheduler.step(
                eps, t, sample, scale=finest, reblurring=False, generator=generator
            ).prev_sample
    return (sample / 2 + 0.5).clamp(0, 1)  # as the pipelines post-process


# ---------------------------------------------------------------------------------------------------------------
# every mode, end to end


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_end_to_end(clip_pipe, mode):
    out = run(clip_pipe, mode, output_type="pil")
    assert isinstance(out, SinDDMCLIPPipelineOutput)
    assert len(out.images) == len(out.masks) == 1
    image, mask = out.images[0], out.masks[0]
    assert image.size == mask.size == (140, 100)
    assert image.mode == "RGB" and mask.mode == "L"
    mask = np.asarray(mask)
    if mode == "roi":
        y, x, h, w = ROI_BOX
        expected = np.zeros_like(mask)
        expected[y : y + h, x : x + w] = 255
        np.testing.assert_array_equal(mask, expected)
    else:
        assert mask.max() == 255  # guidance ran and selected pixels


def test_output_types_and_tuple_output(clip_pipe):
    pt = run(clip_pipe, batch_size=2, output_type="pt")
    assert pt.images.shape == (2, 3, 100, 140) and pt.masks.shape == (2, 1, 100, 140)
    assert 0 <= float(pt.images.min()) and float(pt.images.max()) <= 1
    assert 0 <= float(pt.masks.min()) and float(pt.masks.max()) <= 1
    np_out = run(clip_pipe, batch_size=2, output_type="np")
    assert np_out.images.shape == (2, 100, 140, 3) and np_out.masks.shape == (2, 100, 140, 1)
    np.testing.assert_allclose(np_out.masks, pt.masks.permute(0, 2, 3, 1).numpy())
    images, masks = run(clip_pipe, batch_size=2, return_dict=False)
    assert torch.equal(images, pt.images) and torch.equal(masks, pt.masks)


def test_retargeted_content_has_the_retargeted_size(clip_pipe):
    out = run(clip_pipe, width_scale=1.5, height_scale=0.8)
    assert out.images.shape == (1, 3, 80, 210) and out.masks.shape == (1, 1, 80, 210)


def test_same_generator_gives_the_same_result_and_no_state_leaks_between_calls(clip_pipe):
    first = run(clip_pipe, "content")
    run(clip_pipe, "style", seed=5)  # a call in between must not change the next one
    again = run(clip_pipe, "content")
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    other = run(clip_pipe, "content", seed=1)
    assert not torch.equal(first.images, other.images)


def test_the_global_random_state_is_not_used(clip_pipe):
    state = torch.get_rng_state()
    run(clip_pipe, "content")
    assert torch.equal(state, torch.get_rng_state())


def test_each_image_of_a_batch_with_its_own_generator_equals_its_single_run(clip_pipe):
    batch = clip_pipe(PROMPT, batch_size=2, generator=[seeded(1), seeded(2)], output_type="pt", **FAST)
    for index, seed in enumerate((1, 2)):
        single = run(clip_pipe, seed=seed)
        torch.testing.assert_close(batch.images[index : index + 1], single.images, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.masks[index : index + 1], single.masks, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# strength 0 = no guidance: exactly the unguided images of the same generator (reblurring off)


@pytest.mark.parametrize("mode", ["content", "style"])
def test_strength_zero_gives_exactly_the_unguided_images(clip_pipe, mode):
    out = run(clip_pipe, mode, strength=0.0, batch_size=2)
    assert torch.equal(out.images, unguided(clip_pipe, batch_size=2))
    assert float(out.masks.abs().max()) == 0.0
    guided = run(clip_pipe, mode, batch_size=2)
    assert (guided.images - out.images).abs().max() > 0.1


def test_strength_zero_style_transfer_is_the_training_image_noised_and_denoised(clip_pipe):
    out = run(clip_pipe, "style_transfer", strength=0.0)
    finest = clip_pipe.scheduler.num_scales - 1
    start = F.interpolate(clip_pipe.pyramid.image(finest - 1), size=(100, 140), mode="bilinear", align_corners=False)
    expected = denoise_finest(clip_pipe, start, clip_pipe.scheduler.start_timesteps[finest], seeded(0))
    assert torch.equal(out.images, expected)


def test_strength_zero_roi_is_the_training_image_noised_to_3_and_denoised(clip_pipe):
    out = run(clip_pipe, "roi", strength=0.0)
    # contiguous, as the pipeline's batch of copies is (the pyramid's tensor is a channels-last view, and the
    # convolutions round differently on it)
    training = clip_pipe.pyramid.image(clip_pipe.scheduler.num_scales - 1).contiguous()
    expected = denoise_finest(clip_pipe, training, 3, seeded(0))
    assert torch.equal(out.images, expected)
    assert (run(clip_pipe, "roi").images - out.images).abs().max() > 0.1  # with guidance the box changes


def test_roi_edit_changes_the_box_far_more_than_the_rest(clip_pipe):
    edited = run(clip_pipe, "roi").images
    plain = run(clip_pipe, "roi", strength=0.0).images
    change = (edited - plain).abs().amax(dim=1)[0]
    y, x, h, w = ROI_BOX
    inside = change[y : y + h, x : x + w].mean()
    outside_mask = torch.ones_like(change, dtype=torch.bool)
    outside_mask[max(0, y - 8) : y + h + 8, max(0, x - 8) : x + w + 8] = False  # 3 denoising steps spread it a bit
    assert inside > 10 * change[outside_mask].mean()


# ---------------------------------------------------------------------------------------------------------------
# content mode: the changed area tracks fill_factor


@pytest.mark.parametrize("fill_factor", [0.1, 0.3, 0.5, 0.8])
def test_content_mask_and_changed_area_track_fill_factor(clip_pipe, fill_factor):
    """Measured (seed 0, 2 views): mask means 0.1000 / 0.2999 / 0.4989 / 0.7989; fraction of pixels changed by more
    than 0.05 (vs strength 0) 0.165 / 0.385 / 0.566 / 0.825 (the denoiser spreads edits a few pixels beyond the
    mask); mean change inside the mask 0.40-0.44, outside 0.015-0.024.
    Tolerances: mask mean within 0.02; changed fraction in [fill_factor - 0.02, fill_factor + 0.12]; inside > 5x
    outside."""
    base = run(clip_pipe, strength=0.0).images
    out = run(clip_pipe, fill_factor=fill_factor, num_augmentations=4)
    mask = out.masks
    assert abs(float(mask.mean()) - fill_factor) <= 0.02
    change = (out.images - base).abs().amax(dim=1, keepdim=True)
    changed = float((change > 0.05).float().mean())
    assert fill_factor - 0.02 <= changed <= fill_factor + 0.12
    assert change[mask > 0.5].mean() > 5 * change[mask <= 0.5].mean()


def test_style_mask_covers_nearly_the_whole_image(clip_pipe):
    """fill_factor 1 keeps every pixel with a non-zero gradient (quantile 0); pixels that no augmented view sees
    have none."""
    mask = run(clip_pipe, "style", num_augmentations=8).masks
    assert float(mask.mean()) > 0.9


# ---------------------------------------------------------------------------------------------------------------
# the CLIP loss and its gradient


def test_clip_loss_falls_over_guidance_steps_on_a_fixed_target(clip_pipe):
    """20 normalised steps (strength 0.1) on a 64 x 48 image towards one text embedding; the loss is measured on the
    same 4 views each time. Measured: 1.0036 -> 0.9480, falling at every step."""
    guide = CLIPGuide(clip_pipe.clip_model, num_augmentations=4)
    target = encode_prompts(clip_pipe.clip_model, clip_pipe.tokenizer, ["a photo of fire."])
    image = pil_to_tensor(synthetic_image(64, 48))

    def fixed_loss(x):
        return float(guide.loss(x, target, [seeded(123)]))

    losses = [fixed_loss(image)]
    generator = seeded(0)
    for _ in range(20):
        grad, _ = guide.gradient(image, target, [generator])
        image = normalized_step(image, grad, strength=0.1)
        losses.append(fixed_loss(image))
    assert losses[-1] < losses[0] - 0.02
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= 17


def test_the_loss_is_1_2_times_one_minus_the_cosine(clip_pipe):
    """One view, one template: the loss is 1.2 · (1 - cos(image embedding, text embedding))."""
    guide = CLIPGuide(clip_pipe.clip_model, num_augmentations=1)
    target = encode_prompts(clip_pipe.clip_model, clip_pipe.tokenizer, ["fire"])
    image = torch.rand(1, 3, 40, 56) * 2 - 1
    generator = seeded(3)
    loss = guide.loss(image, target, [generator])
    generator = seeded(3)
    torch.randint(1, 2, (1,), generator=generator), torch.randint(1, (1,), generator=generator)  # the subset draws
    views = guide.views((image + 1) / 2, generator)
    cosine = F.cosine_similarity(guide.image_embeddings(views), target)
    torch.testing.assert_close(loss, 1.2 * (1 - cosine.mean()))


def test_clip_and_denoiser_stay_frozen_and_get_no_gradients(clip_pipe):
    run(clip_pipe, "content")
    assert not clip_pipe.clip_model.training
    for model in (clip_pipe.clip_model, clip_pipe.denoiser):
        assert all(p.grad is None for p in model.parameters())
    assert not any(p.requires_grad for p in clip_pipe.clip_model.parameters())


def test_clip_takes_non_square_views_with_interpolated_positions(clip_pipe):
    guide = CLIPGuide(clip_pipe.clip_model)
    views = torch.rand(2, 3, 32, 45)
    assert guide.image_embeddings(views).shape == (2, 16)
    # at CLIP's own (square) size the interpolation is the identity
    square = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(guide.mean).view(1, 3, 1, 1)
    std = torch.tensor(guide.std).view(1, 3, 1, 1)
    with torch.no_grad():
        plain = clip_pipe.clip_model.get_image_features(pixel_values=(square - mean) / std)
    plain = plain if isinstance(plain, torch.Tensor) else plain.pooler_output
    torch.testing.assert_close(guide.image_embeddings(square), plain)


class NoInterpolationCLIP(torch.nn.Module):
    """A CLIP whose ``get_image_features`` lacks ``interpolate_pos_encoding`` (transformers before it existed)."""

    def __init__(self, clip_model):
        super().__init__()
        self.model = clip_model
        self.config = clip_model.config

    @property
    def device(self):
        return self.model.device

    @property
    def dtype(self):
        return self.model.dtype

    def get_image_features(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values)


def test_without_interpolate_pos_encoding_views_are_resized_to_the_square_input(clip_pipe):
    views = torch.rand(2, 3, 32, 45)
    embeddings = CLIPGuide(NoInterpolationCLIP(clip_pipe.clip_model)).image_embeddings(views)
    square = F.interpolate(views, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(embeddings, CLIPGuide(clip_pipe.clip_model).image_embeddings(square))


def test_thresholded_grad_matches_the_golden_vectors():
    golden = golden_tensors()
    sparse, mask = thresholded_grad(golden["thresholded_grad_in"], quantile=0.7)
    torch.testing.assert_close(sparse, golden["thresholded_grad_q0.7_out"], atol=1e-6, rtol=1e-5)
    assert torch.equal(mask.float(), golden["thresholded_grad_q0.7_mask"])


def test_thresholded_grad_handles_zero_gradients_and_the_extreme_quantiles():
    grad = torch.zeros(1, 3, 4, 4)
    grad[0, :, :2] = torch.rand(3, 2, 4) + 0.1
    sparse, mask = thresholded_grad(grad, quantile=0.0)
    assert torch.isfinite(sparse).all()
    assert int(mask.sum()) == 8  # all pixels above the minimum energy (0)
    sparse, mask = thresholded_grad(grad, quantile=1.0)
    assert int(mask.sum()) == 0 and float(sparse.abs().max()) == 0.0


def test_normalized_step_scales_to_the_masked_image_norm_and_skips_empty_masks():
    image = torch.rand(2, 3, 8, 8) * 0.5
    grad = torch.randn(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4] = 1.0
    stepped = normalized_step(image, grad, strength=0.1, mask=mask)
    change = stepped - image
    assert torch.equal(change[1], torch.zeros_like(change[1]))  # empty mask: unchanged, not NaN
    assert float(change[0, :, 4:].abs().max()) == 0.0
    unclamped = 0.1 * torch.linalg.vector_norm(image[0] * mask[0])
    assert float(torch.linalg.vector_norm(change[0])) <= float(unclamped) + 1e-6


# ---------------------------------------------------------------------------------------------------------------
# augmentations


def test_augmented_views_are_differentiable_deterministic_and_non_square():
    image = torch.rand(1, 3, 100, 140, requires_grad=True)
    views = augmented_views(image, num_views=6, size=32, max_size=45, generator=seeded(0))
    assert views.shape == (6, 3, 32, 44)
    assert 0 <= float(views.detach().min()) and float(views.detach().max()) <= 1 + 1e-6
    views.mean().backward()
    assert torch.isfinite(image.grad).all() and float(image.grad.abs().sum()) > 0
    again = augmented_views(image.detach(), 6, 32, 45, seeded(0))
    assert torch.equal(views.detach(), again)
    assert not torch.equal(again, augmented_views(image.detach(), 6, 32, 45, seeded(1)))


# ---------------------------------------------------------------------------------------------------------------
# loading and saving


def test_from_pipe_shares_the_sinddm_components_and_freezes_clip(clip_dir):
    sinddm = tiny_pipeline(dim=4)
    clip_model = CLIPModel.from_pretrained(clip_dir)
    assert any(p.requires_grad for p in clip_model.parameters())
    pipe = SinDDMCLIPPipeline.from_pipe(
        sinddm, clip_model=clip_model, tokenizer=CLIPTokenizer.from_pretrained(clip_dir)
    )
    assert pipe.denoiser is sinddm.denoiser and pipe.pyramid is sinddm.pyramid
    assert not any(p.requires_grad for p in pipe.clip_model.parameters()) and not pipe.clip_model.training
    back = SinDDMPipeline.from_pipe(pipe)
    assert set(back.components) == {"denoiser", "scheduler", "pyramid"}


def test_save_pretrained_round_trip_keeps_clip(clip_pipe, tmp_path):
    clip_pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "SinDDMCLIPPipeline"
    assert index["clip_model"] == ["transformers", "CLIPModel"] and index["tokenizer"][0] == "transformers"
    loaded = SinDDMCLIPPipeline.from_pretrained(tmp_path)  # CLIP from the folder itself
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(run(loaded).images, run(clip_pipe).images)


def test_without_a_clip_argument_a_plain_sinddm_folder_asks_for_the_default_clip(sinddm_dir, tmp_path):
    with pytest.raises(OSError, match="(?s)" + re.escape(DEFAULT_CLIP_MODEL) + ".*clip_model_name_or_path"):
        SinDDMCLIPPipeline.from_pretrained(sinddm_dir, local_files_only=True, cache_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# bad input


BAD_INPUTS = [
    ({"prompt": ""}, "prompt must be a non-empty string"),
    ({"prompt": "   "}, "prompt must be a non-empty string"),
    ({"prompt": None}, "prompt must be a non-empty string"),
    ({"mode": "inpaint"}, "mode must be one of"),
    ({"strength": -0.1}, r"strength must be a number in \[0, 1\]"),
    ({"strength": 1.5}, r"strength must be a number in \[0, 1\]"),
    ({"strength": math.nan}, r"strength must be a number in \[0, 1\]"),
    ({"strength": "0.5"}, r"strength must be a number in \[0, 1\]"),
    ({"fill_factor": -0.01}, r"fill_factor must be a number in \[0, 1\]"),
    ({"fill_factor": 1.01}, r"fill_factor must be a number in \[0, 1\]"),
    ({"mode": "style", "fill_factor": 2}, r"fill_factor must be a number in \[0, 1\]"),
    ({"mode": "roi", "roi_box": (-1, 0, 10, 10)}, "roi_box .* leaves the image"),
    ({"mode": "roi", "roi_box": (95, 0, 10, 10)}, "roi_box .* leaves the image"),
    ({"mode": "roi", "roi_box": (0, 131, 10, 10)}, "roi_box .* leaves the image"),
    ({"mode": "roi", "roi_box": (0, 0, 0, 10)}, "roi_box is empty"),
    ({"mode": "roi", "roi_box": (0, 0, 10)}, "roi_box must be 4 ints"),
    ({"mode": "roi", "roi_box": (0.5, 0, 10, 10)}, "roi_box must be 4 ints"),
    ({"mode": "roi"}, "mode 'roi' needs roi_box"),
    ({"mode": "roi", "roi_box": ROI_BOX, "fill_factor": 0.5}, "fill_factor does not apply to mode 'roi'"),
    ({"mode": "roi", "roi_box": ROI_BOX, "width_scale": 2.0}, "height_scale and width_scale must be 1"),
    ({"roi_box": ROI_BOX}, "roi_box applies to mode 'roi' only"),
    ({"num_augmentations": 0}, "num_augmentations must be an int >= 1"),
    ({"batch_size": 0}, "batch_size must be an int >= 1"),
    ({"output_type": "latent"}, "output_type must be one of"),
    ({"batch_size": 2, "generator": [torch.Generator()]}, "list of 1 generators; it must have one per image"),
    ({"width_scale": 0}, "width_scale must be a finite number > 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUTS, ids=[str(case[0]) for case in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(clip_pipe, kwargs, message):
    kwargs = {"prompt": PROMPT, **kwargs}
    with pytest.raises(ValueError, match=message):
        clip_pipe(**kwargs)


def test_style_transfer_needs_two_scales(clip_pipe):
    """A one-scale model (a config the scheduler accepts, though `build_pyramid` makes at least two scales)."""
    sizes = [[44, 60]]
    pipe = SinDDMCLIPPipeline(
        denoiser=clip_pipe.denoiser,
        scheduler=SinDDMScheduler(scale_sizes=sizes, rescale_losses=[]),
        pyramid=SinDDMPyramid(scale_sizes=sizes),
        clip_model=clip_pipe.clip_model,
        tokenizer=clip_pipe.tokenizer,
    )
    with pytest.raises(ValueError, match="needs >= 2 scales"):
        pipe(PROMPT, mode="style_transfer")


# ---------------------------------------------------------------------------------------------------------------
# docstring examples of the new modules

DOC_MODULES = ["sinddm_pipeline.augmentations", "sinddm_pipeline.clip_guidance", "sinddm_pipeline.pipeline_sinddm_clip"]
FENCE = re.compile(r"^\s*```\w*\s*$", re.MULTILINE)
DOC_CASES = [
    (test.name, test)
    for name in DOC_MODULES
    for test in doctest.DocTestFinder(exclude_empty=True).find(importlib.import_module(name))
    if test.examples and "from_pretrained(" not in test.docstring
]


@pytest.mark.parametrize("case", [case[1] for case in DOC_CASES], ids=[case[0] for case in DOC_CASES])
def test_docstring_examples_run(case):
    test = doctest.DocTestParser().get_doctest(FENCE.sub("", case.docstring), dict(case.globs), case.name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {case.name}"


def test_pil_masks_are_grayscale_images(clip_pipe):
    masks = run(clip_pipe, "roi", output_type="pil", strength=0.0).masks
    assert isinstance(masks[0], Image.Image) and masks[0].mode == "L"


def test_callback_on_step_end_sees_every_denoising_step(clip_pipe):
    steps = []
    clip_pipe("fire", strength=0.0, generator=torch.Generator().manual_seed(0),
              callback_on_step_end=lambda pipe, index, t, kwargs: steps.append(index))  # fmt: skip
    assert steps == list(range(100 + 45 + 29))  # every step of the 3 scales (start timesteps 100, 45, 29)
