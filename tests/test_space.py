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

from sinddm_app import blocks, files, models, settings  # noqa: E402
from sinddm_app.tabs.generate import generate  # noqa: E402
from sinddm_pipeline.pipeline_sinddm_clip import DEFAULT_CLIP_MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GPU_HANDLERS = (
    "use_image",
    "generate",
    "text_edit",
    "harmonize",
    "style_transfer",
    "roi_generate",
    "paint",
    "edit",
    "inpaint",
    "outpaint",
    "super_resolution",
    "animate",
    "train",
)
HANDLER_MODULES = {
    "use_image": "sinddm_app.picker",
    "generate": "sinddm_app.tabs.generate",
    "text_edit": "sinddm_app.tabs.text_edit",
    "harmonize": "sinddm_app.tabs.harmonize",
    "style_transfer": "sinddm_app.tabs.style_transfer",
    "roi_generate": "sinddm_app.tabs.roi",
    "paint": "sinddm_app.tabs.paint",
    "edit": "sinddm_app.tabs.paint",
    "inpaint": "sinddm_app.tabs.inpaint",
    "outpaint": "sinddm_app.tabs.inpaint",
    "super_resolution": "sinddm_app.tabs.super_resolution",
    "animate": "sinddm_app.tabs.animate",
    "train": "sinddm_app.tabs.train",
    "push_to_hub": "sinddm_app.tabs.train",
}


def task_handlers() -> types.SimpleNamespace:
    """The app's task handlers by name, with its ZeroGPU facts, from the sinddm_app modules imported now."""
    handlers = {name: getattr(importlib.import_module(module), name) for name, module in HANDLER_MODULES.items()}
    gpu_module = importlib.import_module("sinddm_app.gpu")
    return types.SimpleNamespace(**handlers, ZERO_GPU=gpu_module.ZERO_GPU, GPU_SECONDS=gpu_module.GPU_SECONDS)


app = task_handlers()  # as this machine imports them: without `spaces`


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
    """The app's handlers imported afresh (every sinddm_app module) beside a fake `spaces` whose GPU decorator
    records its duration; the modules imported before come back afterwards."""
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
    assert blocks.TABS  # every module of the app is imported, so that each is restored afterwards
    for name in [name for name in sys.modules if name == "sinddm_app" or name.startswith("sinddm_app.")]:
        monkeypatch.delitem(sys.modules, name)
    return task_handlers()


def test_every_task_runs_under_spaces_gpu_on_zero_gpu(zero_gpu_app):
    assert zero_gpu_app.ZERO_GPU and not app.ZERO_GPU  # here, without the package (spaces/ is only a folder)
    for name in GPU_HANDLERS:
        handler = getattr(zero_gpu_app, name)
        assert hasattr(handler, "zero_gpu_duration"), name
        assert not hasattr(getattr(app, name), "zero_gpu_duration")  # a CPU machine: unchanged
    assert zero_gpu_app.generate.zero_gpu_duration == zero_gpu_app.GPU_SECONDS
    assert zero_gpu_app.animate.zero_gpu_duration("model", 16) > zero_gpu_app.animate.zero_gpu_duration("model", 2)
    duration = zero_gpu_app.train.zero_gpu_duration  # computed from the request's steps
    assert duration("image.png", 300, 32, 8, 0) == 72 and duration("image.png", 10_000, 32, 8, 0) == 460
    assert duration("image.png", "many", 32, 8, 0) == duration("image.png", settings.MAX_TRAIN_STEPS, 32, 8, 0)
    assert not hasattr(zero_gpu_app.push_to_hub, "zero_gpu_duration")  # no GPU needed


def test_old_outputs_and_trained_models_are_pruned_from_the_apps_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "WORK_DIR", tmp_path)
    monkeypatch.setattr(settings, "PRUNE_WORK_DIR", True)
    old, new, cache = tmp_path / "train_old", tmp_path / "samples_new", tmp_path / "cached_examples"
    for folder in (old / "sinddm-old", new, cache):
        folder.mkdir(parents=True)
    monkeypatch.setitem(models._trained, "trained/sinddm-old", str(old / "sinddm-old"))
    two_days_ago = time.time() - 48 * 3600
    for folder in (old, cache):
        os.utime(folder, (two_days_ago, two_days_ago))
    assert files.prune_work_dir() == ["train_old"]
    assert not old.exists() and new.exists() and cache.exists() and "trained/sinddm-old" not in models._trained
    monkeypatch.setattr(settings, "PRUNE_WORK_DIR", False)  # a folder the user chose (SINDDM_APP_DIR): never pruned
    os.utime(new, (two_days_ago, two_days_ago))
    assert files.prune_work_dir() == [] and new.exists()


def test_any_task_error_is_one_readable_line(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory\n  while sampling")

    monkeypatch.setattr(models, "request_pipeline", broken)
    with pytest.raises(gr.Error, match="RuntimeError: CUDA out of memory while sampling"):
        generate(settings.DEFAULT_MODEL, 1, 0, 1.0, 1.0, 0, 0, False, 0)


def test_model_names_are_bounded_normalised_and_folders_only_when_allowed(tmp_path, monkeypatch):
    with pytest.raises(gr.Error, match="characters long; at most 256"):
        models.resolve_model("x" * 5000)  # not an OSError (file name too long) nor a bare "Error"
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setattr(settings, "ALLOW_FOLDERS", False)  # the default: shipped, trained, images and Hub ids only
    for name in (str(folder), "../models", "./model", "~/model"):
        with pytest.raises(gr.Error, match="folders of this machine only when the app is started with --allow_folders"):
            models.resolve_model(name)
    assert models.resolve_model("user/some-model") == "user/some-model"  # a Hub repo id, as it is
    shipped = settings.DEFAULT_MODEL  # a shipped model: fine
    assert models.resolve_model(shipped).endswith(os.path.join("models", shipped))
    monkeypatch.setattr(settings, "ALLOW_FOLDERS", True)  # python app.py --allow_folders
    spellings = [str(folder), str(folder) + "/", str(tmp_path / "model" / ".." / "model")]
    assert {models.resolve_model(name) for name in spellings} == {os.path.realpath(folder)}  # one cache entry


def test_the_fast_mode_cache_follows_the_pipelines_it_was_made_for():
    import gc

    from conftest import synthetic_image

    before = len(models._fast)
    name = models.image_pipeline(synthetic_image(96, 72, seed=7))
    fast = models.fast_request_pipeline(name)
    base = models._images[name]
    assert len(models._fast) == before + 1 and base in models._fast and fast.pyramid is base.pyramid
    del models._images[name], base, fast  # evicted, as the 9th uploaded image evicts the oldest
    gc.collect()
    assert len(models._fast) == before  # its fast entry went with it: no stale denoiser for a reused id


def test_task_progress_comes_from_the_pipelines_step_callback():
    from conftest import synthetic_image

    calls = []

    def progress(fraction, desc=None):
        calls.append((fraction, desc))

    name = models.image_pipeline(synthetic_image(96, 72, seed=11))
    generate(name, 1, 0, 1.0, 1.0, 0, 0, True, 3, progress=progress)
    total = models._images[name].num_steps(models._images[name].plan(), 3)  # 2 scales x 3 steps
    assert calls[0] == (0, "Generating") and calls[-1] == (1.0, f"Generating ({total}/{total} steps)")
    assert [fraction for fraction, _ in calls[1:]] == [step / total for step in range(1, total + 1)]
