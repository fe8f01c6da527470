"""The app as a Hugging Face Space: front matter and pins, ZeroGPU wrapping with a fake `spaces`, pruning old files."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")
from huggingface_hub import SpaceCard  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402

import app  # noqa: E402
from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GPU_HANDLERS = ("use_image", "generate", "text_edit", "harmonize", "style_transfer", "roi_generate", "train")


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line (extras dropped)."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {line.split("==")[0].split("[")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_space_front_matter_parses_with_huggingface_hubs_own_parser():
    card = SpaceCard.load(ROOT / "spaces" / "README.md")
    data = card.data
    assert (data.sdk, data.app_file, data.license) == ("gradio", "app.py", "mit")
    assert data.sdk_version == gr.__version__  # the Gradio these tests ran
    requires = SpecifierSet(
        next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if "requires-python" in line)
        .split("=", 1)[1].strip().strip('"')
    )
    assert isinstance(data.python_version, str) and data.python_version + ".0" in requires
    assert DEFAULT_CLIP_MODEL in data.models and "mcp-server" in data.tags
    (preload,) = data.to_dict()["preload_from_hub"]
    repo, files = preload.split(" ")
    assert repo == DEFAULT_CLIP_MODEL and {"config.json", "model.safetensors", "vocab.json"} <= set(files.split(","))


def test_space_requirements_pin_the_versions_ci_tests():
    space, project = pins(ROOT / "spaces" / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert space == project and {"torch", "diffusers", "gradio"} <= set(space)
    for name, version in space.items():
        installed = importlib.metadata.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"


@pytest.fixture
def zero_gpu_app(monkeypatch):
    """app.py imported afresh beside a fake `spaces` whose GPU decorator records its duration."""
    fake = types.ModuleType("spaces")

    def GPU(duration=60):  # noqa: N802 - the real package's name
        def wrap(handler):
            def wrapped(*args, **kwargs):
                return handler(*args, **kwargs)

            wrapped.zero_gpu_duration, wrapped.__wrapped__ = duration, handler
            return wrapped

        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    spec = importlib.util.spec_from_file_location("app_on_zero_gpu", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_task_runs_under_spaces_gpu_on_zero_gpu(zero_gpu_app):
    assert zero_gpu_app.ZERO_GPU and not app.ZERO_GPU  # here, without the package (spaces/ is only a folder)
    for name in GPU_HANDLERS:
        handler = getattr(zero_gpu_app, name)
        assert hasattr(handler, "zero_gpu_duration"), name
        assert not hasattr(getattr(app, name), "zero_gpu_duration")  # a CPU machine: unchanged
    assert zero_gpu_app.generate.zero_gpu_duration == zero_gpu_app.GPU_SECONDS
    duration = zero_gpu_app.train.zero_gpu_duration  # computed from the request's steps
    assert duration("image.png", 300, 32, 8, 0) == 72 and duration("image.png", 10_000, 32, 8, 0) == 460
    assert duration("image.png", "many", 32, 8, 0) == duration("image.png", app.MAX_TRAIN_STEPS, 32, 8, 0)
    assert not hasattr(zero_gpu_app.push_to_hub, "zero_gpu_duration")  # no GPU needed


def test_old_outputs_and_trained_models_are_pruned_from_the_apps_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(app, "WORK_DIR", tmp_path)
    monkeypatch.setattr(app, "PRUNE_WORK_DIR", True)
    old, new, cache = tmp_path / "train_old", tmp_path / "samples_new", tmp_path / "cached_examples"
    for folder in (old / "sinddm-old", new, cache):
        folder.mkdir(parents=True)
    monkeypatch.setitem(app._trained, "trained/sinddm-old", str(old / "sinddm-old"))
    two_days_ago = time.time() - 48 * 3600
    for folder in (old, cache):
        os.utime(folder, (two_days_ago, two_days_ago))
    assert app.prune_work_dir() == ["train_old"]
    assert not old.exists() and new.exists() and cache.exists() and "trained/sinddm-old" not in app._trained
    monkeypatch.setattr(app, "PRUNE_WORK_DIR", False)  # a folder the user chose (SINDDM_APP_DIR): never pruned
    os.utime(new, (two_days_ago, two_days_ago))
    assert app.prune_work_dir() == [] and new.exists()


def test_any_task_error_is_one_readable_line(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory\n  while sampling")

    monkeypatch.setattr(app, "request_pipeline", broken)
    with pytest.raises(gr.Error, match="RuntimeError: CUDA out of memory while sampling"):
        app.generate(app.DEFAULT_MODEL, 1, 0, 1.0, 1.0, 0, 0, False, 0)


def test_model_names_are_bounded_normalised_and_folders_only_when_allowed(tmp_path, monkeypatch):
    with pytest.raises(gr.Error, match="characters long; at most 256"):
        app.resolve_model("x" * 5000)  # not an OSError (file name too long) nor a bare "Error"
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setattr(app, "ALLOW_FOLDERS", False)  # the default: shipped, trained, images and Hub ids only
    for name in (str(folder), "../models", "./model", "~/model"):
        with pytest.raises(gr.Error, match="folders of this machine only when the app is started with --allow_folders"):
            app.resolve_model(name)
    assert app.resolve_model("user/some-model") == "user/some-model"  # a Hub repo id, as it is
    assert app.resolve_model(app.DEFAULT_MODEL).endswith(os.path.join("models", app.DEFAULT_MODEL))  # shipped: fine
    monkeypatch.setattr(app, "ALLOW_FOLDERS", True)  # python app.py --allow_folders
    spellings = [str(folder), str(folder) + "/", str(tmp_path / "model" / ".." / "model")]
    assert {app.resolve_model(name) for name in spellings} == {os.path.realpath(folder)}  # one cache entry


def test_the_fast_mode_cache_follows_the_pipelines_it_was_made_for():
    import gc

    from conftest import synthetic_image

    before = len(app._fast)
    name = app.image_pipeline(synthetic_image(96, 72, seed=7))
    fast = app.fast_request_pipeline(name)
    base = app._images[name]
    assert len(app._fast) == before + 1 and base in app._fast and fast.pyramid is base.pyramid
    del app._images[name], base, fast  # evicted, as the 9th uploaded image evicts the oldest
    gc.collect()
    assert len(app._fast) == before  # its fast entry went with it: no stale denoiser for a reused id


def test_task_progress_comes_from_the_pipelines_step_callback():
    from conftest import synthetic_image

    calls = []

    def progress(fraction, desc=None):
        calls.append((fraction, desc))

    name = app.image_pipeline(synthetic_image(96, 72, seed=11))
    app.generate(name, 1, 0, 1.0, 1.0, 0, 0, True, 3, progress=progress)
    total = app._images[name].num_steps(app._images[name].plan(), 3)  # 2 scales x 3 steps
    assert calls[0] == (0, "Generating") and calls[-1] == (1.0, f"Generating ({total}/{total} steps)")
    assert [fraction for fraction, _ in calls[1:]] == [step / total for step in range(1, total + 1)]
