"""SinDDMPipeline.from_image: a training-free pipeline that every SinDDM pipeline, task and loader takes as it is."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import synthetic_image
from hub_cache import write_hub_cache
from PIL import Image

from sinddm_pipeline import (
    SinDDMImg2ImgPipeline,
    SinDDMPatchDenoiser,
    SinDDMPipeline,
    SinDDMScheduler,
)
from sinddm_pipeline.remote_code import add_remote_code
from sinddm_pipeline.training_free import fast_defaults

STEPS = [3, 2]  # few steps: the tests check the plumbing, benchmarks/RESULTS.md the quality


def generate(pipe, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def image():
    return synthetic_image(96, 72, seed=2)


@pytest.fixture(scope="module")
def pipe(image):
    pipe = SinDDMPipeline.from_image(image)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_from_image_builds_a_complete_pipeline(pipe, image):
    assert isinstance(pipe.denoiser, SinDDMPatchDenoiser)
    assert pipe.scheduler.config.solver_order == 2
    assert pipe.pyramid.config.scale_sizes == [[48, 64], [72, 96]]
    assert np.array_equal(np.asarray(pipe.pyramid.pil(1)), np.asarray(image))
    assert pipe.denoiser.config.num_inference_steps == fast_defaults(2)["num_inference_steps"]
    assert list(pipe.denoiser.parameters()) == []  # nothing learned


@pytest.mark.parametrize("kind", ["pil", "numpy", "tensor", "path"])
def test_from_image_takes_every_image_input(image, tmp_path, kind):
    array = np.array(image)
    inputs = {
        "pil": image,
        "numpy": array,
        "tensor": torch.from_numpy(array).permute(2, 0, 1) / 255.0,
        "path": str(tmp_path / "image.png"),
    }
    image.save(tmp_path / "image.png")
    pipe = SinDDMPipeline.from_image(inputs[kind])
    assert np.array_equal(np.asarray(pipe.pyramid.pil(1)), array)


def test_samples_are_seeded_and_have_the_training_size(pipe):
    first, again, other = generate(pipe, seed=0), generate(pipe, seed=0), generate(pipe, seed=1)
    assert first.shape == (1, 72, 96, 3)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    default_steps = pipe(generator=torch.Generator().manual_seed(0), output_type="np").images
    assert default_steps.shape == (1, 72, 96, 3)  # the denoiser's own step counts


def test_save_and_reload_gives_the_same_images_and_stores_no_weights(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "free")
    files = {p.relative_to(tmp_path / "free").as_posix() for p in (tmp_path / "free").rglob("*") if p.is_file()}
    assert files == {
        "model_index.json",
        "denoiser/config.json",
        "scheduler/scheduler_config.json",
        "pyramid/config.json",
        "pyramid/diffusion_pytorch_model.safetensors",
    }
    assert json.loads((tmp_path / "free" / "model_index.json").read_text())["denoiser"][1] == "SinDDMPatchDenoiser"
    loaded = SinDDMPipeline.from_pretrained(tmp_path / "free")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.denoiser, SinDDMPatchDenoiser)
    public = {key: value for key, value in pipe.denoiser.config.items() if not key.startswith("_")}
    assert {key: loaded.denoiser.config[key] for key in public} == public
    assert np.array_equal(generate(loaded, seed=3), generate(pipe, seed=3))


def test_loads_offline_by_repo_id_from_a_hub_cache(pipe, tmp_path, monkeypatch):
    pipe.save_pretrained(tmp_path / "free")
    write_hub_cache(tmp_path / "free", tmp_path / "cache", "me/free-sinddm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = SinDDMPipeline.from_pretrained("me/free-sinddm", cache_dir=tmp_path / "cache")
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(generate(loaded, seed=3), generate(pipe, seed=3))


def test_vanilla_diffusers_loads_it_with_the_shipped_code(pipe, tmp_path):
    folder = tmp_path / "shipped"
    pipe.save_pretrained(folder)
    add_remote_code(folder)
    script = (
        "import sys, numpy as np, torch\n"
        "sys.modules['sinddm_pipeline'] = None\n"  # the package is not importable in this process
        "from diffusers import DiffusionPipeline\n"
        "pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "images = pipe(generator=torch.Generator().manual_seed(3), output_type='np', num_inference_steps=[3, 2])\n"
        "print(type(pipe.denoiser).__name__)\n"
        "np.save(sys.argv[2], images.images)\n"
    )
    env_home = {"HF_HOME": str(tmp_path / "home"), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    import os

    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env_home},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "SinDDMPatchDenoiser"
    assert np.allclose(np.load(tmp_path / "out.npy"), generate(pipe, seed=3), atol=1e-6)


def test_retargeting_exact_sizes_and_extra_scales(pipe):
    assert generate(pipe, width_scale=1.5).shape == (1, 72, 144, 3)
    assert generate(pipe, height=60, width=130).shape == (1, 60, 130, 3)
    assert generate(pipe, height=144, width=192).shape == (1, 144, 192, 3)  # extra scales beyond the finest


def test_roi_guided_generation_runs_on_it(pipe):
    out = generate(pipe, roi_source_box=(10, 10, 20, 30), roi_target_boxes=[(30, 50, 20, 30)], batch_size=2)
    assert out.shape == (2, 72, 96, 3) and np.isfinite(out).all()


def test_img2img_style_transfer_and_harmonization_run_on_it(pipe, image):
    img2img = SinDDMImg2ImgPipeline.from_pipe(pipe)
    img2img.set_progress_bar_config(disable=True)
    assert img2img.denoiser is pipe.denoiser
    content = synthetic_image(80, 60, seed=5)
    styled = img2img(content, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert styled.shape == (1, 60, 80, 3)
    mask = np.zeros((60, 80), dtype=bool)
    mask[20:40, 30:50] = True
    harmonized = img2img(content, mask_image=mask, generator=torch.Generator().manual_seed(0), output_type="np")
    far = np.asarray(content, dtype=np.float32)[:5, :5] / 255.0
    assert np.abs(harmonized.images[0][:5, :5] - far).max() <= 1 / 255 + 1e-6  # outside the mask: the input


def test_clip_guidance_runs_on_it(pipe, tmp_path):
    pytest.importorskip("transformers")
    from conftest import save_tiny_clip
    from transformers import CLIPModel, CLIPTokenizer

    from sinddm_pipeline import SinDDMCLIPPipeline

    save_tiny_clip(tmp_path / "clip")
    clip = SinDDMCLIPPipeline.from_pipe(
        pipe,
        clip_model=CLIPModel.from_pretrained(tmp_path / "clip"),
        tokenizer=CLIPTokenizer.from_pretrained(tmp_path / "clip"),
    )
    clip.set_progress_bar_config(disable=True)
    out = clip("fire", num_augmentations=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape == (1, 72, 96, 3) and out.masks.shape == (1, 72, 96, 1)
    for mode in ("style", "style_transfer"):
        assert clip("fire", mode=mode, num_augmentations=2, output_type="np").images.shape == (1, 72, 96, 3)
    roi = clip("fire", mode="roi", roi_box=(10, 10, 20, 20), num_augmentations=2, output_type="np")
    assert roi.images.shape == (1, 72, 96, 3)


def test_bad_images_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        SinDDMPipeline.from_image(Image.new("RGB", (40, 30)))
    with pytest.raises(ValueError, match="8 px"):
        SinDDMPipeline.from_image(Image.new("RGB", (5, 5)))
    with pytest.raises(ValueError, match="got a list"):
        SinDDMPipeline.from_image([[0, 1], [1, 0]])
    with pytest.raises(FileNotFoundError, match="No image"):
        SinDDMPipeline.from_image(str(tmp_path / "missing.png"))
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        SinDDMPipeline.from_image(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="max_pixels"):
        SinDDMPipeline.from_image(synthetic_image(), max_pixels=0)
    assert list(tmp_path.iterdir()) == [tmp_path / "notes.txt"]  # nothing written


def test_a_large_image_is_capped_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="sinddm_pipeline"):
        pipe = SinDDMPipeline.from_image(synthetic_image(400, 300, seed=1))
    assert pipe.pyramid.config.scale_sizes[-1] == [193, 258]  # 50,000 px
    assert any("50,000 pixels" in record.getMessage() for record in caplog.records)


def test_denoiser_options_reach_the_denoiser_and_bad_ones_are_refused(image):
    pipe = SinDDMPipeline.from_image(image, search="exact", patch_sizes=[9, 5], num_inference_steps=[4, 3])
    assert pipe.denoiser.config.search == "exact" and pipe.denoiser.config.patch_sizes == [9, 5]
    with pytest.raises(ValueError, match="patch_sizes"):
        SinDDMPipeline.from_image(image, patch_sizes=[9, 5, 5])
    with pytest.raises(TypeError):
        SinDDMPipeline.from_image(image, no_such_option=1)


def test_a_trained_pipeline_keeps_the_exact_default(tiny_pipe):
    assert tiny_pipe.default_num_inference_steps(None) is None
    pipe = SinDDMPipeline(
        denoiser=tiny_pipe.denoiser,
        scheduler=SinDDMScheduler.from_config(tiny_pipe.scheduler.config),
        pyramid=tiny_pipe.pyramid,
    )
    assert pipe.default_num_inference_steps([4, 3]) == [4, 3]


def test_pipelines_sharing_the_denoiser_reuse_its_built_references(pipe):
    pipe.denoiser.prepare()
    built = dict(pipe.denoiser._references)
    SinDDMImg2ImgPipeline.from_pipe(pipe)  # casts to float32 and re-attaches the same pyramid: nothing to rebuild
    SinDDMPipeline(denoiser=pipe.denoiser, scheduler=SinDDMScheduler.from_config(pipe.scheduler.config),
                   pyramid=pipe.pyramid)
    assert all(pipe.denoiser._references[key] is value for key, value in built.items())
    pipe.denoiser.to(torch.float64)  # another dtype: built anew for it
    try:
        assert pipe.denoiser.reference(1, guided=True).keys.dtype == torch.float64
        assert all(key[3] == torch.float64 for key in pipe.denoiser._references)
    finally:
        pipe.denoiser.to(torch.float32)
