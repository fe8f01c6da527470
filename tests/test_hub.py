"""The Hub folder (pipeline, card, thumbnail, samples, shipped code), vanilla-diffusers loading, mocked pushes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline
from hub_cache import write_hub_cache
from huggingface_hub import ModelCard
from PIL import Image

from sinddm_pipeline import SinDDMImg2ImgPipeline, SinDDMModel, SinDDMPipeline
from sinddm_pipeline.hub import model_card, prepare_hub_folder, push_to_hub
from sinddm_pipeline.loading import has_remote_code, load_native, load_pipeline

PIPELINE_FILES = {
    "model_index.json",
    "denoiser/config.json",
    "denoiser/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
    "pyramid/config.json",
    "pyramid/diffusion_pytorch_model.safetensors",
}
CODE_FILES = {"sinddm_pipeline.py", "denoiser/sinddm_pipeline.py", "scheduler/sinddm_pipeline.py"}
CODE_FILES |= {"pyramid/sinddm_pipeline.py"}
CARD_FILES = {"README.md", "training_image.png", "samples.png"}

# Run in a fresh interpreter where `import sinddm_pipeline` fails (it is installed editable here), then load the
# folder or repo id (argv[1]) with vanilla diffusers and save a seeded generation to argv[2].
VANILLA_SCRIPT = """
import importlib.abc, importlib.util, sys

class BlockSinDDM(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sinddm_pipeline":
            raise ImportError("sinddm_pipeline is blocked in this process")

sys.meta_path.insert(0, BlockSinDDM())
import numpy as np, torch
from diffusers import DiffusionPipeline

torch.set_num_threads(1)
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe(batch_size=2, generator=torch.Generator().manual_seed(5), output_type="np").images
assert not [name for name in sys.modules if name.split(".")[0] == "sinddm_pipeline"]
print(type(pipe).__module__, type(pipe).__name__, type(pipe.denoiser).__name__)
np.save(sys.argv[2], images)
"""


def generate(pipe, seed=5, batch_size=2):
    return pipe(batch_size=batch_size, generator=torch.Generator().manual_seed(seed), output_type="np").images


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pipe() -> SinDDMPipeline:
    return tiny_pipeline(dim=4)


@pytest.fixture(scope="module")
def hub_folder(pipe, tmp_path_factory) -> Path:
    args = {"image_path": "/data/balloons.png", "max_train_steps": 12, "hub_token": "hf_secret", "lr": 5e-4}
    return prepare_hub_folder(pipe, tmp_path_factory.mktemp("hub") / "me-tiny", args, repo_id="me/tiny-sinddm")


def run_vanilla(target: str, out: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """VANILLA_SCRIPT in a fresh process (cwd: tmp_path; empty HF home and dynamic-modules cache)."""
    environment = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    environment.pop("HF_TOKEN", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", VANILLA_SCRIPT, target, str(out)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hub_folder_holds_pipeline_card_images_and_code(hub_folder, pipe):
    assert files_of(hub_folder) == PIPELINE_FILES | CODE_FILES | CARD_FILES
    index = json.loads((hub_folder / "model_index.json").read_text())
    assert index["_class_name"] == ["sinddm_pipeline", "SinDDMPipeline"]
    assert index["denoiser"] == ["sinddm_pipeline", "SinDDMModel"]
    assert index["scheduler"] == ["sinddm_pipeline", "SinDDMScheduler"]
    assert index["pyramid"] == ["sinddm_pipeline", "SinDDMPyramid"]
    code = (hub_folder / "sinddm_pipeline.py").read_text()
    imports = [node for node in ast.walk(ast.parse(code)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = {alias.name for node in imports if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in imports if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert all(node.level == 0 for node in imports if isinstance(node, ast.ImportFrom))  # no relative import
    assert {name.split(".")[0] for name in modules} <= {"__future__", "torch", "numpy", "PIL", "diffusers"} | set(
        sys.stdlib_module_names
    )
    assert all((hub_folder / name).read_text() == code for name in CODE_FILES)
    height, width = pipe.scheduler.config.scale_sizes[-1]
    thumbnail = Image.open(hub_folder / "training_image.png")
    np.testing.assert_array_equal(np.asarray(thumbnail), np.asarray(pipe.pyramid.pil(pipe.pyramid.num_scales - 1)))
    grid = Image.open(hub_folder / "samples.png")
    assert grid.size == (4 * (width + 2) + 2, height + 4)  # 4 samples in a row, 2 px padding


def test_model_card_metadata_and_body(hub_folder):
    card = ModelCard.load(hub_folder / "README.md")
    assert card.data.library_name == "diffusers"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert {"sinddm", "single-image"} <= set(card.data.tags) and card.data.license == "mit"
    text = card.text
    assert "![training image](training_image.png)" in text and "![samples](samples.png)" in text
    assert 'SinDDMPipeline.from_pretrained("me/tiny-sinddm")' in text
    assert 'DiffusionPipeline.from_pretrained("me/tiny-sinddm", trust_remote_code=True)' in text
    assert '"max_train_steps": 12' in text and '"lr": 0.0005' in text and "balloons.png" in text
    assert "hf_secret" not in card.content and "hub_token" not in card.content
    assert "loss_curve" not in text
    assert card.data.widget == [{"text": "4 samples, seed 0", "output": {"url": "samples.png"}}]  # the Hub gallery
    assert "pip install diffusers transformers torch safetensors" in text  # the vanilla path needs nothing else
    assert "pip install sinddm_pipeline" not in text and "`pip install -e .` in a checkout" in text  # not on PyPI


def test_model_card_names_a_given_install_command_and_no_widget_without_samples():
    command = 'pip install "sinddm-pipeline @ git+https://github.com/me/sinddm"'
    card = model_card("me/x", num_samples=0, install_command=command)
    assert f"`{command}`" in card.text and "widget" not in card.data.to_dict() and "![samples]" not in card.text


def test_vanilla_diffusers_loads_the_folder_in_a_fresh_process(hub_folder, pipe, tmp_path):
    result = run_vanilla(str(hub_folder), tmp_path / "out.npy", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-3:] == ["diffusers_modules.local.sinddm_pipeline", "SinDDMPipeline", "SinDDMModel"]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), generate(pipe))


def test_vanilla_diffusers_loads_the_repo_offline_from_a_hub_cache(hub_folder, pipe, tmp_path):
    cache = tmp_path / "hub"
    write_hub_cache(hub_folder, cache, "me/tiny-sinddm")
    result = run_vanilla("me/tiny-sinddm", tmp_path / "out.npy", tmp_path, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), generate(pipe))


def test_vanilla_diffusers_refuses_the_code_without_trust_remote_code(hub_folder):
    from diffusers import DiffusionPipeline

    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(hub_folder)


def test_this_package_loads_the_folder_with_its_own_classes(hub_folder, pipe):
    assert has_remote_code(hub_folder)
    loaded = load_native(SinDDMPipeline, hub_folder)
    assert type(loaded) is SinDDMPipeline and type(loaded.denoiser) is SinDDMModel
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(generate(loaded), generate(pipe))
    img2img = load_native(SinDDMImg2ImgPipeline, hub_folder, denoiser=pipe.denoiser)
    assert type(img2img) is SinDDMImg2ImgPipeline and img2img.denoiser is pipe.denoiser


def test_load_pipeline_handles_folders_and_cached_repos_with_and_without_code(hub_folder, pipe, tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    pipe.save_pretrained(plain)
    expected = generate(pipe)
    cache = tmp_path / "hub"
    write_hub_cache(hub_folder, cache, "me/with-code")
    write_hub_cache(plain, cache, "me/plain")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for target in (hub_folder, plain, "me/with-code", "me/plain"):
        loaded = load_pipeline(SinDDMPipeline, target, cache_dir=cache)
        assert type(loaded) is SinDDMPipeline and type(loaded.denoiser) is SinDDMModel, target
        loaded.set_progress_bar_config(disable=True)
        np.testing.assert_array_equal(generate(loaded), expected)


def test_sinddm_pipeline_from_pretrained_loads_the_folder(hub_folder, pipe):
    loaded = SinDDMPipeline.from_pretrained(hub_folder)
    assert type(loaded.denoiser) is SinDDMModel
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(generate(loaded), generate(pipe))


def test_prepare_from_a_training_folder(pipe, tmp_path):
    run = tmp_path / "run"
    pipe.save_pretrained(run)
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-2" / "optimizer.bin").write_bytes(b"x")
    (run / "loss_log.json").write_text("[]")
    (run / "model_index.json.tmp").write_text("{}")
    (run / "loss_curve.png").write_bytes(b"png")
    (run / "training_args.json").write_text(json.dumps({"image_path": "cat.png", "max_train_steps": 3}))
    folder = prepare_hub_folder(run, tmp_path / "upload", num_grid_samples=2, seed=1)
    assert files_of(folder) == PIPELINE_FILES | CODE_FILES | CARD_FILES | {"loss_curve.png", "training_args.json"}
    card = ModelCard.load(folder / "README.md")
    assert "![loss curve](loss_curve.png)" in card.text and "`cat.png`" in card.text
    assert 'from_pretrained("upload")' in card.text  # no repo id: the folder's name
    assert json.loads((run / "model_index.json").read_text())["_class_name"] == "SinDDMPipeline"  # source untouched
    with pytest.raises(ValueError, match="not empty"):
        prepare_hub_folder(run, folder)


def test_push_to_hub_uploads_the_prepared_folder(pipe, hub_calls):
    result = push_to_hub(pipe, "tiny", private=True, token="hf_abc", create_pr=True, num_grid_samples=1)
    assert result == "https://huggingface.co/me/x/commit/0"
    assert hub_calls["create_repo"] == {"repo_id": "tiny", "token": "hf_abc", "private": True, "exist_ok": True}
    upload = hub_calls["upload_folder"]
    assert upload["repo_id"] == "me/tiny" and upload["token"] == "hf_abc" and upload["create_pr"] is True
    assert set(upload["uploaded"]) == PIPELINE_FILES | CODE_FILES | CARD_FILES
    assert {"checkpoint-*", "*.tmp", "loss_log.json"} <= set(upload["ignore_patterns"])
    assert 'from_pretrained("me/tiny")' in upload["card"] and "hf_abc" not in upload["card"]
    assert not Path(upload["folder_path"]).exists()  # a temporary folder, removed after the upload


def test_push_to_hub_of_a_training_folder_skips_checkpoints(pipe, tmp_path, hub_calls):
    pipe.save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "checkpoint-1").mkdir()
    (tmp_path / "run" / "checkpoint-1" / "random_states_0.pkl").write_bytes(b"x")
    push_to_hub(tmp_path / "run", "me/run", num_grid_samples=0)
    upload = hub_calls["upload_folder"]
    assert hub_calls["create_repo"]["private"] is None and upload["token"] is None
    assert set(upload["uploaded"]) == PIPELINE_FILES | CODE_FILES | {"README.md", "training_image.png"}
    assert "![samples]" not in upload["card"]


def test_pipeline_push_to_hub_method_uploads_the_prepared_folder(pipe, hub_calls):
    pipe.push_to_hub("me/tiny", private=False, token="hf_abc", num_grid_samples=1)
    assert hub_calls["create_repo"]["private"] is False and hub_calls["upload_folder"]["repo_id"] == "me/tiny"
    assert set(hub_calls["upload_folder"]["uploaded"]) == PIPELINE_FILES | CODE_FILES | CARD_FILES


def test_flattening_drops_package_imports_and_methods_that_need_the_package():
    from sinddm_pipeline.remote_code import _strip_package_imports

    source = (
        "from __future__ import annotations\n"
        "import torch\n"
        "from .pyramid import Pyramid\n"
        "class P:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path):\n"
        "        from .remote_code import load_pipeline\n"
        "        return load_pipeline(cls, path)\n"
        "    def lazy(self):\n"
        "        from .roi import check_box\n"
        "        return check_box\n"
    )
    flat = _strip_package_imports(source)
    assert flat == "import torch\nclass P:\n    def lazy(self):\n        pass\n        return check_box\n"
    with pytest.raises(ValueError, match="not shipped"):
        _strip_package_imports("from .hub import push_to_hub\n")


def _a_file(path: Path) -> Path:
    path.write_bytes(b"not a pipeline")
    return path


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda tmp: tmp / "missing" / "model", FileNotFoundError, "No pipeline folder at"),
        (lambda tmp: tmp / "missing", FileNotFoundError, "not a Hub repo id either"),
        (lambda tmp: _a_file(tmp / "weights.safetensors"), NotADirectoryError, "is a file"),
    ],
)
def test_a_path_that_is_neither_a_folder_nor_a_hub_id_gets_a_clear_error(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        SinDDMPipeline.from_pretrained(str(make(tmp_path)))


def test_a_non_editable_install_finds_the_card_template(pipe, tmp_path):
    """The card template is package data: a wheel of the project, unpacked away from the checkout, writes the card."""
    import zipfile

    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    import shutil

    root, source = Path(__file__).resolve().parents[1], tmp_path / "source"  # built from a copy: no build/ here
    shutil.copytree(root / "sinddm_pipeline", source / "sinddm_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "wheel")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    pipe.save_pretrained(tmp_path / "model")
    code = (
        "import sinddm_pipeline.hub as hub; "
        f"assert hub.__file__.startswith({str(tmp_path / 'site')!r}), hub.__file__; "
        f"folder = hub.prepare_hub_folder({str(tmp_path / 'model')!r}, {str(tmp_path / 'out')!r}, num_grid_samples=0); "
        "print((folder / 'README.md').read_text()[:400])"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "library_name: diffusers" in result.stdout
