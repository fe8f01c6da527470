"""SinDDMImg2ImgPipeline (SPEC §6): harmonization, style transfer, the gamma-0 reblurring loop, inputs, from_pipe."""

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path, synthetic_image, tiny_pipeline, train_tiny
from PIL import Image
from scipy.ndimage import distance_transform_edt
from scipy.stats import wasserstein_distance

from sinddm_pipeline import SinDDMImg2ImgPipeline, SinDDMPipeline
from sinddm_pipeline.image_inputs import capped_size, prepare_image, prepare_mask
from sinddm_pipeline.pipeline_sinddm_img2img import harmonization_mask, histogram_match
from sinddm_pipeline.pyramid import pil_to_tensor


def img2img(pipe):
    out = SinDDMImg2ImgPipeline.from_pipe(pipe)
    out.set_progress_bar_config(disable=True)
    return out


@pytest.fixture(scope="module")
def seascape_pipe():
    """A dim-8 model of seascape.png (5 scales, finest 249x200), its finest scale trained for 300 steps (~6-15 s):
    style transfer and harmonization only run the finest scale."""
    pipe = tiny_pipeline(Image.open(shared_path("images", "seascape.png")), dim=8)
    return img2img(train_tiny(pipe, steps=300, scales=[pipe.scheduler.num_scales - 1]))


@pytest.fixture(scope="module")
def random_pipe():
    """An untrained tiny model on a small synthetic image (2 scales, finest 96x72)."""
    return img2img(tiny_pipeline(dim=4))


def run(pipe, image, seed=0, **kwargs):
    return pipe(image, generator=torch.Generator().manual_seed(seed), **kwargs).images


def as_float(image):
    return np.asarray(image, dtype=np.float64)


def w1(a, b):
    """Per-channel 1-D Wasserstein distance of the pixel values (0-255), averaged over R, G, B."""
    return float(np.mean([wasserstein_distance(a[..., c].ravel(), b[..., c].ravel()) for c in range(3)]))


# ---------------------------------------------------------------------------------------------------------------
# harmonization


def test_harmonization_keeps_the_image_outside_the_dilated_mask_and_changes_the_object(seascape_pipe):
    composite = Image.open(shared_path("images", "i2i", "seascape", "tree.jpg"))
    mask = Image.open(shared_path("images", "i2i", "seascape", "tree_mask.jpg"))
    output = run(seascape_pipe, composite, mask_image=mask)[0]
    assert output.size == capped_size(*composite.size) == (249, 200)  # 348x280 = 97,440 px > 50,000: capped

    result, start = as_float(output), as_float(prepare_image(composite))
    object_mask = prepare_mask(mask, output.size, original_size=composite.size) > 0
    # Pixels farther from the object than the dilation (7) plus the blur's reach (4 sigma = 20) and a margin.
    outside = distance_transform_edt(~object_mask) > 7 + 20 + 3
    assert outside.mean() > 0.3
    assert np.abs(result - start)[outside].max() <= 1.0  # within 1/255
    inside = object_mask & (distance_transform_edt(object_mask) > 2)  # the object itself (weight 1)
    assert np.abs(result - start)[inside].mean() > 3.0  # changed by the model: > 3/255 on average


def test_harmonization_defaults_match_the_reference(seascape_pipe, monkeypatch):
    """t = 5 and no histogram matching with a mask; t = 15 and matching without one."""
    calls = []
    original = seascape_pipe.scheduler.set_timesteps
    monkeypatch.setattr(
        seascape_pipe.scheduler, "set_timesteps", lambda **kw: calls.append(kw["start_timestep"]) or original(**kw)
    )
    image = synthetic_image(96, 72)
    mask = np.zeros((72, 96), dtype=bool)
    mask[5:15, 5:15] = True
    run(seascape_pipe, image, mask_image=mask)
    run(seascape_pipe, image)
    run(seascape_pipe, image, start_timestep=30)
    assert calls == [5, 15, 30]
    # With a mask and match_histogram=None the kept region is the unmatched input (beyond 15 + 7 + 20 px: weight 0).
    output = as_float(run(seascape_pipe, image, mask_image=mask)[0])
    np.testing.assert_allclose(output[45:, 45:], as_float(image)[45:, 45:], atol=1.0)


def test_harmonization_mask_is_dilated_blurred_and_normalised():
    mask = np.zeros((80, 80))
    mask[38:42, 38:42] = 1.0
    weight = harmonization_mask(mask)
    assert weight.min() == 0.0 and weight.max() == 1.0
    assert weight[40, 40] > 0.9 and weight[40, 40 + 7] > 0.4  # the dilation reaches 7 px beyond the object
    assert weight[0, 0] == 0.0 and weight[40, 40 + 2 + 7 + 21] == 0.0  # beyond dilation + blur: exactly 0
    assert np.allclose(weight, weight.T)  # symmetric object, symmetric weight
    assert np.array_equal(harmonization_mask(np.ones((20, 20))), np.ones((20, 20)))  # no division by zero


# ---------------------------------------------------------------------------------------------------------------
# style transfer


def test_style_transfer_moves_the_histograms_to_the_training_image_and_keeps_the_content(seascape_pipe):
    """snowy_dolomites4.jpg (a bright snowy mountain) in the style of seascape.png. Measured with the 300-step
    model: W1(input, training) = 50.9, W1(histogram-matched input, training) = 1.9, W1(output, training) = 6.6
    (per-channel 1-D Wasserstein distance in 0-255 units, averaged over R, G, B); grey-level correlation of output
    and input 0.94; the model changes the matched input by ~14/255 on average."""
    content = Image.open(shared_path("images", "i2i", "seascape", "snowy_dolomites4.jpg"))
    output = run(seascape_pipe, content)[0]
    assert output.size == capped_size(*content.size) == (298, 167)

    training = as_float(seascape_pipe.pyramid.pil(seascape_pipe.pyramid.num_scales - 1))
    start = prepare_image(content)
    result, source = as_float(output), as_float(start)
    matched = as_float(histogram_match(start, seascape_pipe.pyramid.pil(seascape_pipe.pyramid.num_scales - 1)))
    w_input, w_output = w1(source, training), w1(result, training)
    assert w_input > 30 and w_output < 0.25 * w_input, (w_input, w_output)
    # The content is kept: the grey levels of output and input are strongly correlated ...
    correlation = np.corrcoef(result.mean(-1).ravel(), source.mean(-1).ravel())[0, 1]
    assert correlation > 0.8, correlation
    # ... and the model did act on the matched image (the output is not just the histogram-matched input).
    assert np.abs(result - matched).mean() > 2.0


def test_style_transfer_without_histogram_matching_keeps_the_colours_closer(seascape_pipe):
    content = Image.open(shared_path("images", "i2i", "seascape", "snowy_dolomites4.jpg"))
    plain = as_float(run(seascape_pipe, content, match_histogram=False)[0])
    source = as_float(prepare_image(content))
    assert np.abs(plain - source).mean() < 0.5 * np.abs(as_float(run(seascape_pipe, content)[0]) - source).mean()


def test_output_size_follows_the_input(random_pipe):
    for size in [(64, 48), (130, 90), (400, 300)]:
        output = run(random_pipe, synthetic_image(*size))[0]
        assert output.size == capped_size(*size)
    assert capped_size(400, 300) == (258, 193)


def test_denoising_is_the_reblurring_step_with_gamma_zero(random_pipe):
    """The loop written out from SPEC §5 with g = 0: x0 clamped, DDIM-like steps, clamp(x0) at t = 0; the
    scheduler's gammas are left as they were."""
    pipe, image, t_start = random_pipe, synthetic_image(40, 32, seed=2), 7
    gammas = pipe.scheduler.gammas.clone()
    output = pipe(image, start_timestep=t_start, generator=torch.Generator().manual_seed(5), output_type="pt").images

    scheduler, scale = pipe.scheduler, pipe.scheduler.num_scales - 1
    matched = histogram_match(image.convert("RGB"), pipe.pyramid.pil(scale))
    x_start = pil_to_tensor(matched)
    noise = torch.randn(x_start.shape, generator=torch.Generator().manual_seed(5))
    abar = scheduler.alphas_cumprod.double()
    x = abar[t_start].sqrt().float() * x_start + (1 - abar[t_start]).sqrt().float() * noise
    with torch.no_grad():
        for t in range(t_start - 1, -1, -1):
            eps = pipe.denoiser(x, t, scale).sample
            x0 = (x * (1 / abar[t]).sqrt().float() - eps * (1 / abar[t] - 1).sqrt().float()).clamp(-1, 1)
            if t == 0:
                x = x0
            else:
                direction = (x - abar[t].sqrt().float() * x0) / (1 - abar[t]).sqrt().float()
                x = abar[t - 1].sqrt().float() * x0 + (1 - abar[t - 1]).sqrt().float() * direction
    torch.testing.assert_close(output, (x / 2 + 0.5).clamp(0, 1), atol=2e-5, rtol=0)
    assert torch.equal(scheduler.gammas, gammas)


# ---------------------------------------------------------------------------------------------------------------
# pipeline plumbing


def test_the_whole_documented_start_timestep_range_runs(random_pipe):
    # t = 100 (the top of [1, 100]) is pure noise: the sample then owes nothing to the input image
    image = synthetic_image(96, 72, seed=3)
    for t in (1, 100):
        assert run(random_pipe, image, start_timestep=t)[0].size == (96, 72)
    other = synthetic_image(96, 72, seed=4)
    assert np.array_equal(as_float(run(random_pipe, image, start_timestep=100)[0]),
                          as_float(run(random_pipe, other, start_timestep=100)[0]))


def test_output_types_batch_and_determinism(random_pipe):
    image = synthetic_image(50, 40)
    pil = run(random_pipe, image, batch_size=2)
    assert len(pil) == 2 and all(p.size == (50, 40) for p in pil)
    array = run(random_pipe, image, output_type="np")
    assert array.shape == (1, 40, 50, 3) and array.dtype == np.float32
    tensor = run(random_pipe, image, output_type="pt")
    assert tensor.shape == (1, 3, 40, 50)
    np.testing.assert_array_equal(run(random_pipe, image, output_type="np"), array)
    assert np.abs(run(random_pipe, image, seed=1, output_type="np") - array).max() > 0.01
    (images,) = random_pipe(image, return_dict=False)
    assert isinstance(images[0], Image.Image)


def test_from_pipe_both_ways_shares_the_components(random_pipe):
    generation = SinDDMPipeline.from_pipe(random_pipe)
    assert type(generation) is SinDDMPipeline
    assert generation.denoiser is random_pipe.denoiser and generation.pyramid is random_pipe.pyramid
    back = SinDDMImg2ImgPipeline.from_pipe(generation)
    assert type(back) is SinDDMImg2ImgPipeline and back.scheduler is random_pipe.scheduler
    assert back.pyramid.scale_0.dtype == torch.uint8  # from_pipe's float cast leaves the image buffers alone


def test_loads_a_saved_generation_pipeline(tmp_path):
    pipe = tiny_pipeline(dim=4)
    pipe.save_pretrained(tmp_path)
    loaded = SinDDMImg2ImgPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    image = synthetic_image(48, 40)
    np.testing.assert_array_equal(run(loaded, image, output_type="np"), run(img2img(pipe), image, output_type="np"))


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((40, 50, 3), dtype=np.uint8),
        np.full((40, 50, 3), 0.5, dtype=np.float32),
        np.zeros((40, 50), dtype=np.uint8),
        torch.full((3, 40, 50), 0.5),
        torch.full((1, 3, 40, 50), 0.5),
        torch.zeros((1, 40, 50)),
        Image.new("RGBA", (50, 40)),
        Image.new("L", (50, 40)),
    ],
)
def test_accepted_image_types(random_pipe, image):
    assert run(random_pipe, image)[0].size == (50, 40)


def test_grayscale_and_rgba_are_converted_with_a_log_line(random_pipe, caplog):
    caplog.set_level(logging.INFO, logger="sinddm_pipeline")
    run(random_pipe, Image.new("RGBA", (50, 40)))
    run(random_pipe, np.zeros((40, 50), dtype=np.uint8))
    messages = [record.getMessage() for record in caplog.records]
    assert any("RGBA" in m and "alpha" in m for m in messages) and any("converted L to RGB" in m for m in messages)


def test_large_inputs_are_resized_with_a_log_line(random_pipe, caplog):
    caplog.set_level(logging.INFO, logger="sinddm_pipeline")
    output = run(random_pipe, np.zeros((300, 400, 3), dtype=np.uint8))[0]
    assert output.size == (258, 193)
    assert any("resized from 400x300 to 258x193" in record.getMessage() for record in caplog.records)


def test_a_mask_of_another_size_is_resized_with_a_log_line(random_pipe, caplog):
    caplog.set_level(logging.INFO, logger="sinddm_pipeline")
    image = synthetic_image(80, 60)
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[10:20, 10:20] = 255
    output = run(random_pipe, image, mask_image=mask)[0]
    assert output.size == (80, 60)
    assert any("40x30" in r.getMessage() and "resized the mask" in r.getMessage() for r in caplog.records)
    resized = prepare_mask(mask, (80, 60))
    assert resized.shape == (60, 80) and resized[25:35, 25:35].min() > 0.9 and resized[:, 50:].max() == 0
    outside = harmonization_mask(resized) == 0
    assert outside.mean() > 0.05
    np.testing.assert_allclose(as_float(output)[outside], as_float(image)[outside], atol=1.0)


@pytest.mark.parametrize(
    "mask",
    [
        Image.new("L", (80, 60)),
        np.zeros((60, 80), dtype=bool),
        torch.zeros(60, 80),
    ],
)
def test_an_all_zero_mask_is_refused(random_pipe, mask):
    with pytest.raises(ValueError, match="mask_image: the mask is zero everywhere"):
        run(random_pipe, synthetic_image(80, 60), mask_image=mask)


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("images/tree.jpg", "path or string"),
        ([[0, 1], [1, 0]], "got a list"),
        (None, "got a NoneType"),
        (np.zeros((40, 50, 2), dtype=np.uint8), "shape"),
        (np.zeros((3, 40, 50), dtype=np.uint8), "channels-last"),
        (np.zeros((0, 50, 3), dtype=np.uint8), "empty"),
        (np.full((40, 50, 3), 2.0), r"\[0, 1\]"),
        (np.full((40, 50, 3), np.nan), "nan"),
        (np.full((40, 50, 3), 300, dtype=np.int32), r"\[0, 255\]"),
        (torch.zeros(2, 3, 40, 50), "batch of 2"),
        (torch.zeros(40, 50, 3), "channels-first"),
        (np.zeros((4, 4, 3), dtype=np.uint8), "at least 8 px"),
        (np.zeros((40, 50, 3), dtype=np.complex64), "dtype"),
    ],
)
def test_bad_images_raise_a_value_error_saying_what_is_allowed(random_pipe, image, fragment):
    with pytest.raises(ValueError, match=fragment):
        random_pipe(image)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"start_timestep": 0}, "start_timestep"),
        ({"start_timestep": 101}, "start_timestep"),
        ({"start_timestep": 5.0}, "start_timestep"),
        ({"match_histogram": "yes"}, "match_histogram"),
        ({"batch_size": 0}, "batch_size"),
        ({"output_type": "jpg"}, "output_type"),
        ({"mask_image": "mask.png"}, "mask_image"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(random_pipe, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        random_pipe(synthetic_image(50, 40), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# examples/render_i2i.py


def load_render_script():
    path = Path(__file__).resolve().parents[1] / "examples" / "render_i2i.py"
    spec = importlib.util.spec_from_file_location("render_i2i", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_i2i"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_render_script_renders_the_paper_inputs_of_the_model(tmp_path):
    """A tiny saved model of seascape.png: the script finds i2i/seascape by itself (harmonization of tree.jpg with
    tree_mask.jpg, style transfer of snowy_dolomites4.jpg) and writes the PNGs."""
    script = load_render_script()
    pipe = tiny_pipeline(Image.open(shared_path("images", "seascape.png")), dim=4)
    pipe.save_pretrained(tmp_path / "model")
    args = script.parse_args(["--model", str(tmp_path / "model"), "--output_dir", str(tmp_path / "out")])
    written = script.main(args)
    names = sorted(path.name for path in written)
    assert names == ["snowy_dolomites4_style_transfer_0.png", "tree_harmonized_0.png"]
    assert Image.open(tmp_path / "out" / "tree_harmonized_0.png").size == (249, 200)
    assert Image.open(tmp_path / "out" / "snowy_dolomites4_style_transfer_0.png").size == (298, 167)
    assert (tmp_path / "out" / "tree_input.png").exists()


def test_render_script_pairs_masks_with_composites(tmp_path):
    script = load_render_script()
    for name in ["a_composite_dog.png", "a_mask_dog.png", "tree.jpg", "tree_mask.jpg", "content.png", "x_mask.png"]:
        Image.new("RGB", (16, 16)).save(tmp_path / name)
    jobs = {(job.image.name, job.mask.name if job.mask else None) for job in script.find_jobs(tmp_path)}
    assert jobs == {("a_composite_dog.png", "a_mask_dog.png"), ("tree.jpg", "tree_mask.jpg"), ("content.png", None)}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    pipe = img2img(tiny_pipeline(dim=4)).to("cuda")
    mask = torch.zeros(40, 50)
    mask[10:20, 10:20] = 1
    images = pipe(
        torch.rand(3, 40, 50), mask_image=mask, generator=torch.Generator("cuda").manual_seed(0), output_type="pt"
    ).images
    assert images.device.type == "cuda" and images.shape == (1, 3, 40, 50)
    assert pipe(synthetic_image(50, 40), output_type="pt").images.device.type == "cuda"


def test_the_second_order_solver_runs_the_image_tasks_too(random_pipe):
    from sinddm_pipeline import SinDDMScheduler

    image = synthetic_image(50, 40)
    second = SinDDMImg2ImgPipeline(
        denoiser=random_pipe.denoiser,
        scheduler=SinDDMScheduler.from_config(random_pipe.scheduler.config, solver_order=2),
        pyramid=random_pipe.pyramid,
    )
    second.set_progress_bar_config(disable=True)
    first_order = run(random_pipe, image, output_type="np")
    outputs = [run(second, image, output_type="np") for _ in range(2)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert outputs[0].shape == first_order.shape and 0 <= outputs[0].min() and outputs[0].max() <= 1
    assert 0 < np.abs(outputs[0] - first_order).max() < 0.5  # another solver of the same process


def test_callback_on_step_end_sees_every_denoising_step(random_pipe):
    steps = []
    run(random_pipe, Image.new("RGB", (96, 72), "gray"), start_timestep=7,
        callback_on_step_end=lambda pipe, index, t, kwargs: steps.append((index, int(t))))  # fmt: skip
    assert steps == [(index, 6 - index) for index in range(7)]  # t = 6 .. 0
