"""SinDDMPipeline: generation, determinism, retargeting, save/load (folder and offline hub cache), bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import shared_path, synthetic_image, tiny_pipeline
from hub_cache import write_hub_cache
from PIL import Image

from sinddm_pipeline import SinDDMPipeline


def generate(pipe, seed=0, **kwargs):
    return pipe(generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def balloons_pipe():
    """A tiny random model on the balloons pyramid (5 scales, finest 248x186)."""
    return tiny_pipeline(Image.open(shared_path("images", "balloons.png")), dim=4)


def test_output_types_and_shapes(tiny_pipe):
    height, width = tiny_pipe.scheduler.config.scale_sizes[-1]
    pil = tiny_pipe(batch_size=2).images
    assert len(pil) == 2 and all(isinstance(image, Image.Image) and image.size == (width, height) for image in pil)
    array = tiny_pipe(output_type="np").images
    assert array.shape == (1, height, width, 3) and array.dtype == np.float32
    assert 0 <= array.min() and array.max() <= 1
    tensor = tiny_pipe(output_type="pt").images
    assert tensor.shape == (1, 3, height, width)


def test_return_dict_false_gives_a_tuple(tiny_pipe):
    output = tiny_pipe(return_dict=False, output_type="np")
    assert isinstance(output, tuple) and output[0].shape[0] == 1


def test_same_seed_same_images_different_seeds_differ(tiny_pipe):
    a, b, c = generate(tiny_pipe, 0, batch_size=2), generate(tiny_pipe, 0, batch_size=2), generate(tiny_pipe, 1)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0] - c[0]).max() > 0.05
    assert np.abs(a[0] - a[1]).max() > 0.05  # samples within a batch differ too


def test_save_and_reload_gives_identical_images(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    files = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert "model_index.json" in files
    assert {f for f in files if not f.endswith((".json", ".safetensors"))} == set()  # no pickle anywhere
    loaded = SinDDMPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(generate(loaded, 3, batch_size=2), generate(tiny_pipe, 3, batch_size=2))
    for index in range(tiny_pipe.pyramid.num_scales):
        assert np.array_equal(np.asarray(loaded.pyramid.pil(index)), np.asarray(tiny_pipe.pyramid.pil(index)))


def test_the_stored_pyramid_is_the_training_image_pyramid(tmp_path):
    image = Image.open(shared_path("images", "balloons.png"))
    pipe = tiny_pipeline(image, dim=4)
    assert pipe.pyramid.pil(4).size == (248, 186)
    np.testing.assert_array_equal(np.asarray(pipe.pyramid.pil(4)), np.asarray(image.convert("RGB")))
    assert pipe.pyramid.blurry_pil(2).size == (126, 94)


def test_width_scale_2_retargets_balloons_to_496x186(balloons_pipe):
    image = balloons_pipe(width_scale=2.0, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (496, 186)


@pytest.mark.parametrize(("height", "width"), [(100, 300), (372, 496), (186, 248), (150, None), (None, 500)])
def test_explicit_size_is_exact_also_larger_than_the_training_image(balloons_pipe, height, width):
    image = balloons_pipe(height=height, width=width).images[0]
    assert image.size == (width or 248, height or 186)


def test_doubling_the_size_adds_extra_scales(balloons_pipe):
    stages = balloons_pipe.plan(height=372, width=496)
    assert len(stages) == 7 and [stage.scale for stage in stages[-3:]] == [4, 4, 4]
    assert stages[0].size == (48, 65)  # the layout keeps (almost) the coarsest scale's size


def test_offline_loading_by_repo_id_from_a_hub_cache(tiny_pipe, tmp_path):
    folder, cache = tmp_path / "saved", tmp_path / "hub"
    tiny_pipe.save_pretrained(folder)
    write_hub_cache(folder, cache, "someuser/somemodel")
    expected = generate(tiny_pipe, 7)
    script = (
        "import sys, numpy as np, torch\n"
        "from sinddm_pipeline import SinDDMPipeline\n"
        "pipe = SinDDMPipeline.from_pretrained('someuser/somemodel')\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "images = pipe(generator=torch.Generator().manual_seed(7), output_type='np').images\n"
        "np.save(sys.argv[1], images)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out.npy")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_model_index_names_the_components(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "SinDDMPipeline"
    assert index["denoiser"][1] == "SinDDMModel" and index["scheduler"][1] == "SinDDMScheduler"
    assert index["pyramid"][1] == "SinDDMPyramid"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -2}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"height_scale": 0.0}, "height_scale"),
        ({"width_scale": -1.0}, "width_scale"),
        ({"width_scale": float("nan")}, "width_scale"),
        ({"height_scale": float("inf")}, "height_scale"),
        ({"height_scale": 0.1}, "too small"),
        ({"width": 10}, "too small"),
        ({"height": 0}, "height"),
        ({"width": 12.5}, "width"),
        ({"height": 100, "height_scale": 2.0}, "height"),
        ({"output_type": "jpg"}, "output_type"),
        ({"generator": 0}, "generator must be a torch.Generator"),
        ({"generator": [torch.Generator()] * 2}, "generator is a list of 2 generators"),
        ({"generator": [0]}, "generator must be a torch.Generator"),
        ({"height": 100_000, "width": 100_000}, "at most 16,777,216 .* lower height / width"),
        ({"width_scale": 1e6}, "pixels per image; at most"),
        ({"batch_size": 10**9}, "batch_size at most 9709 at this size"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(tiny_pipe, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        tiny_pipe(**kwargs)


def test_limits_are_checked_before_anything_is_allocated(tiny_pipe, monkeypatch):
    import sinddm_pipeline.pipeline_sinddm_base as module  # where the pipelines draw their noise

    def no_allocation(*args, **kwargs):
        raise AssertionError("allocated before the limits were checked")

    monkeypatch.setattr(module, "randn_tensor", no_allocation)
    with pytest.raises(ValueError, match="batch_size at most"):
        tiny_pipe(batch_size=10**9)  # 10^9 samples of 96x72 would be ~80 TB


def test_mismatched_components_are_refused(tiny_pipe):
    other = tiny_pipeline(synthetic_image(150, 100))
    with pytest.raises(ValueError, match="different scales"):
        SinDDMPipeline(denoiser=tiny_pipe.denoiser, scheduler=tiny_pipe.scheduler, pyramid=other.pyramid)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(tiny_pipe):
    tiny_pipe.to("cuda")
    images = tiny_pipe(generator=torch.Generator("cuda").manual_seed(0), output_type="pt").images
    assert images.device.type == "cuda"


def test_num_inference_steps_covering_every_step_is_the_exact_path(tiny_pipe):
    exact = generate(tiny_pipe, 4)
    np.testing.assert_array_equal(generate(tiny_pipe, 4, num_inference_steps=1000), exact)


def test_fewer_inference_steps_are_seeded_and_run_fewer_steps(tiny_pipe):
    fast = generate(tiny_pipe, 4, num_inference_steps=10)
    np.testing.assert_array_equal(fast, generate(tiny_pipe, 4, num_inference_steps=10))
    assert fast.shape == generate(tiny_pipe, 4).shape
    assert tiny_pipe.num_steps(tiny_pipe.plan(), 10) == 20 < tiny_pipe.num_steps(tiny_pipe.plan())


def test_per_scale_inference_steps(tiny_pipe):
    num_scales = tiny_pipe.scheduler.num_scales
    uniform = generate(tiny_pipe, 4, num_inference_steps=10)
    np.testing.assert_array_equal(generate(tiny_pipe, 4, num_inference_steps=[10] * num_scales), uniform)
    exact_at_coarsest = [1000] + [10] * (num_scales - 1)
    mixed = generate(tiny_pipe, 4, num_inference_steps=exact_at_coarsest)
    assert not np.array_equal(mixed, uniform)
    starts = tiny_pipe.scheduler.start_timesteps
    expected = starts[0] + sum(min(start, 10) for start in starts[1:])
    assert tiny_pipe.num_steps(tiny_pipe.plan(), exact_at_coarsest) == expected


@pytest.mark.parametrize("steps", [0, 1, 2.5, True, "10", [10], [10, 1], [10, None]])
def test_bad_num_inference_steps_is_refused(tiny_pipe, steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        tiny_pipe(num_inference_steps=steps)


def _spoil(folder, case: str) -> None:
    """One way a saved pipeline can be wrong on disk."""
    from safetensors.torch import load_file, save_file

    weights_path = folder / "denoiser" / "diffusion_pytorch_model.safetensors"
    weights = load_file(weights_path)
    name = sorted(weights)[0]
    if case == "nan":
        weights[name] = weights[name].clone().fill_(float("nan"))
    elif case == "int64":
        weights[name] = weights[name].long()
    elif case == "missing":
        del weights[name]
    if case in ("nan", "int64", "missing"):
        save_file(weights, weights_path)
    index = json.loads((folder / "model_index.json").read_text())
    if case == "scheduler class":
        index["scheduler"] = ["diffusers", "DDPMScheduler"]
        (folder / "model_index.json").write_text(json.dumps(index))
    if case == "bad json":
        (folder / "model_index.json").write_text("{not json")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "holds NaN or infinite values"),
        ("int64", "weights must be floating point; .* are I64"),
        ("missing", "does not hold this denoiser's weights .*1 missing"),
        ("scheduler class", "names the scheduler .*DDPMScheduler.*a SinDDM pipeline has SinDDMScheduler"),
        ("bad json", "model_index.json is not valid JSON"),
    ],
)
@pytest.mark.parametrize("shipped_code", [False, True])
def test_a_wrong_saved_pipeline_is_refused_with_the_file_named(tiny_pipe, tmp_path, case, message, shipped_code):
    from sinddm_pipeline.remote_code import add_remote_code

    tiny_pipe.save_pretrained(tmp_path)
    if shipped_code:
        add_remote_code(tmp_path)
    _spoil(tmp_path, case)
    with pytest.raises(ValueError, match=message) as error:
        SinDDMPipeline.from_pretrained(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_callback_on_step_end_sees_every_step_and_can_replace_the_sample(tiny_pipe):
    seen = []

    def record(pipe, step_index, timestep, callback_kwargs):
        seen.append((step_index, timestep, callback_kwargs["sample"].shape))
        return {}

    def run(**kwargs):
        return tiny_pipe(generator=torch.Generator().manual_seed(0), output_type="pt", num_inference_steps=4,
                         **kwargs).images  # fmt: skip

    plain = run()
    assert torch.equal(run(callback_on_step_end=record), plain)  # a callback that returns nothing changes nothing
    total = tiny_pipe.num_steps(tiny_pipe.plan(), 4)
    assert [index for index, _, _ in seen] == list(range(total)) and seen[-1][1] == 0
    assert {shape for _, _, shape in seen} == {(1, 3, 48, 64), (1, 3, 72, 96)}  # both scales

    def flatten_last(pipe, step_index, timestep, callback_kwargs):
        return {"sample": torch.zeros_like(callback_kwargs["sample"])} if step_index == total - 1 else {}

    assert torch.allclose(run(callback_on_step_end=flatten_last), torch.full_like(plain, 0.5))  # 0 in [-1, 1]
    with pytest.raises(ValueError, match="callback_on_step_end must be a function"):
        run(callback_on_step_end="print")
    with pytest.raises(ValueError, match=r"may name \['sample'\], got \['latents'\]"):
        run(callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents"])


def test_callback_on_step_end_can_stop_the_call_early(tiny_pipe):
    """diffusers' convention: a callback sets ``pipe._interrupt = True``; no step runs after it, at any scale."""
    seen = []

    def stop_after_three(pipe, step_index, timestep, callback_kwargs):
        seen.append(callback_kwargs["sample"].shape)
        if step_index == 2:
            pipe._interrupt = True
        return {}

    images = tiny_pipe(
        generator=torch.Generator().manual_seed(0), output_type="pt", callback_on_step_end=stop_after_three
    ).images
    assert len(seen) == 3 and tiny_pipe.interrupt
    assert images.shape == (1, 3, 48, 64)  # stopped at the coarsest scale: its sample, as it was
    full = tiny_pipe(generator=torch.Generator().manual_seed(0), output_type="pt", num_inference_steps=4).images
    assert full.shape == (1, 3, 72, 96) and not tiny_pipe.interrupt  # the next call starts afresh
