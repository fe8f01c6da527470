"""Pieces of training (SPEC §4) and of its bookkeeping: data, loss, EMA, RNG, checkpoints, images, plots, the Hub."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import png_header_only, synthetic_image
from huggingface_hub.utils import filter_repo_objects
from PIL import Image
from safetensors.torch import save_file

from sinddm_pipeline import SinDDMModel, SinDDMScheduler
from sinddm_pipeline.hub import UPLOAD_IGNORE_PATTERNS, model_card
from sinddm_pipeline.image_io import load_training_image, to_rgb
from sinddm_pipeline.plots import image_grid, loss_curve_image
from sinddm_pipeline.pyramid import build_pyramid
from sinddm_pipeline.training import EMA, TrainingData, training_loss
from sinddm_pipeline.training_state import (
    COMPLETE_NAME,
    GeneratorState,
    StepSeededGenerator,
    check_output_dir,
    check_writable,
    clear_previous_run,
    find_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    read_training_state,
    resumed_loss_log,
    save_checkpoint_atomically,
    save_pipeline_atomically,
    write_loss_log,
    write_training_state,
)


@pytest.fixture(scope="module")
def pyramid():
    return build_pyramid(synthetic_image(96, 72))


# ---------------------------------------------------------------------------------------------------------------
# data and loss


def test_batches_are_copies_of_the_scale(pyramid):
    data = TrainingData.from_pyramid(pyramid)
    x, blurry = data.batch(0, 3)
    assert blurry is None and x.shape == (3, 3, 48, 64)
    x, blurry = data.batch(1, 2)
    assert x.shape == blurry.shape == (2, 3, 72, 96)
    torch.testing.assert_close(x[1], data.images[1][0])
    assert x.min() >= -1 and x.max() <= 1


def test_crops_take_the_same_window_of_image_and_blurry(pyramid):
    data = TrainingData.from_pyramid(pyramid)
    x, blurry = data.batch(1, 4, crop_size=32, generator=torch.Generator().manual_seed(0))
    assert x.shape == blurry.shape == (4, 3, 32, 32)
    image, full_blurry = data.images[1][0], data.blurry[1][0]
    for crop, blurry_crop in zip(x, blurry, strict=True):
        found = [
            (top, left)
            for top in range(72 - 32 + 1)
            for left in range(96 - 32 + 1)
            if torch.equal(image[:, top : top + 32, left : left + 32], crop)
        ]
        assert any(torch.equal(full_blurry[:, t : t + 32, s : s + 32], blurry_crop) for t, s in found)
    whole, _ = data.batch(0, 2, crop_size=64)  # scales no larger than the crop stay whole
    assert whole.shape == (2, 3, 48, 64)


def test_training_loss_is_the_l1_noise_error_of_the_blur_mixed_input(pyramid):
    """SPEC §4: x_t = sqrt(a_t)(g x_blurry + (1-g) x) + sqrt(1-a_t) eps; loss = mean |eps - model(x_t, t, s)|."""
    torch.manual_seed(0)
    model, scheduler = SinDDMModel(dim=8), SinDDMScheduler.from_pyramid(pyramid)
    data = TrainingData.from_pyramid(pyramid)
    x, blurry = data.batch(1, 2)
    t, noise = torch.tensor([3, 70]), torch.randn(x.shape)
    loss = training_loss(model, scheduler, x, blurry, 1, timesteps=t, noise=noise)
    gamma = scheduler.gammas[0, t].view(-1, 1, 1, 1)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * (gamma * blurry + (1 - gamma) * x) + (1 - a).sqrt() * noise
    expected = (noise - model(x_t, t, 1).sample).abs().mean()
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------------------------------------------------------
# EMA


def _shift(model: torch.nn.Module, amount: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(amount)


def test_ema_copies_the_model_before_start_and_averages_after():
    """Updates every `update_every` steps (0-based step count before the update, like the reference); before
    `start_step` an update copies the model, from then on average = decay * average + (1 - decay) * model."""
    torch.manual_seed(0)
    model = SinDDMModel(dim=8)
    ema = EMA(model, decay=0.9, start_step=20, update_every=10)
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training

    _shift(model, 1.0)
    ema.step(model, 5)  # not an update step: unchanged
    assert not torch.equal(next(ema.model.parameters()), next(model.parameters()))
    ema.step(model, 10)  # update step before start: a copy
    for average, current in zip(ema.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(average, current)

    before = [p.clone() for p in ema.model.parameters()]
    _shift(model, 2.0)
    ema.step(model, 20)  # from start_step on: the decay average
    for average, old, current in zip(ema.model.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(average, 0.9 * old + 0.1 * current)
    snapshot = [p.clone() for p in ema.model.parameters()]
    ema.step(model, 25)
    assert all(torch.equal(a, b) for a, b in zip(ema.model.parameters(), snapshot, strict=True))

    restored = EMA(SinDDMModel(dim=8), decay=0.9, start_step=20, update_every=10)
    restored.load_state_dict(ema.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.model.parameters(), snapshot, strict=True))


def test_ema_decay_is_checked():
    with pytest.raises(ValueError, match="decay"):
        EMA(SinDDMModel(dim=8), decay=1.5)


# ---------------------------------------------------------------------------------------------------------------
# random number generators


def test_generator_state_round_trip():
    a = GeneratorState(3)
    torch.rand(5, generator=a.generator)
    state = a.state_dict()
    expected = torch.rand(4, generator=a.generator)
    b = GeneratorState(0)
    b.load_state_dict(state)
    assert torch.equal(torch.rand(4, generator=b.generator), expected)


def test_step_seeded_generator_depends_on_seed_step_and_process_only():
    def draw(seed: int, process: int, step: int) -> torch.Tensor:
        return torch.rand(8, generator=StepSeededGenerator(seed, process).at_step(step))

    reused = StepSeededGenerator(0, 1)
    torch.rand(100, generator=reused.at_step(3))  # earlier draws do not leak into the next step
    assert torch.equal(torch.rand(8, generator=reused.at_step(4)), draw(0, 1, 4))
    assert not torch.equal(draw(0, 0, 4), draw(0, 1, 4))  # processes draw different noise
    assert not torch.equal(draw(0, 0, 4), draw(0, 0, 5))
    assert not torch.equal(draw(0, 0, 4), draw(1, 0, 4))
    reused.load_state_dict(StepSeededGenerator(7, 0).state_dict())  # nothing to restore
    assert torch.equal(torch.rand(8, generator=reused.at_step(4)), draw(0, 1, 4))


# ---------------------------------------------------------------------------------------------------------------
# checkpoints, output folder, loss log


def _write_state(folder) -> None:
    write_training_state(str(folder), torch.nn.Linear(2, 1), torch.Generator().manual_seed(0), "pyramid-digest")


def _make_checkpoint(folder, name: str) -> None:
    """A complete checkpoint folder as save_checkpoint_atomically leaves it (tiny tensors)."""
    (folder / name).mkdir(parents=True)
    save_file({"weight": torch.zeros(2)}, folder / name / "model.safetensors")
    _write_state(folder / name)
    (folder / name / COMPLETE_NAME).write_text("{}")


def test_latest_ignores_unfinished_tmp_folders(tmp_path):
    """A kill while writing leaves `checkpoint-K.tmp`: never picked as latest, nor listed, nor pruned."""
    for name in ["checkpoint-10", "checkpoint-200", "checkpoint-30", "checkpoint-900.tmp", "checkpoint-x"]:
        _make_checkpoint(tmp_path, name)
    (tmp_path / "checkpoint-1000").write_text("a file, not a folder")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10, 30, 200]
    assert find_checkpoint(tmp_path, "latest") == os.path.join(tmp_path, "checkpoint-200")
    assert find_checkpoint(tmp_path, "checkpoint-30") == os.path.join(tmp_path, "checkpoint-30")
    with pytest.raises(ValueError, match="no such checkpoint"):
        find_checkpoint(tmp_path, "checkpoint-900.tmp")
    assert find_checkpoint(tmp_path / "empty", "latest") is None
    prune_checkpoints(tmp_path, keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [30, 200]
    assert (tmp_path / "checkpoint-900.tmp").exists()


class _FakeAccelerator:
    """The parts of accelerate.Accelerator that save_checkpoint_atomically uses, on one process."""

    is_main_process = True

    def __init__(self, fail: bool = False):
        self.fail = fail

    def wait_for_everyone(self) -> None:
        pass

    def save_state(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        save_file({"weight": torch.zeros(2)}, os.path.join(folder, "model.safetensors"))
        if self.fail:
            raise KeyboardInterrupt("killed while writing")


def test_checkpoint_is_renamed_only_when_complete(tmp_path):
    losses = [(1, 0.5), (2, 0.25)]
    path = save_checkpoint_atomically(_FakeAccelerator(), str(tmp_path), 2, losses, _write_state)
    assert path == os.path.join(tmp_path, "checkpoint-2")
    assert json.loads((tmp_path / "checkpoint-2" / "loss_log.json").read_text()) == [[1, 0.5], [2, 0.25]]
    assert json.loads((tmp_path / "checkpoint-2" / COMPLETE_NAME).read_text()) == {"step": 2}
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomically(_FakeAccelerator(fail=True), str(tmp_path), 4, losses, _write_state)
    assert (tmp_path / "checkpoint-4.tmp").exists() and not (tmp_path / "checkpoint-4").exists()
    assert find_checkpoint(tmp_path, "latest") == os.path.join(tmp_path, "checkpoint-2")
    save_checkpoint_atomically(_FakeAccelerator(), str(tmp_path), 4, None, _write_state)  # replaces the leftover
    assert not (tmp_path / "checkpoint-4.tmp").exists()
    assert find_checkpoint(tmp_path, "latest") == os.path.join(tmp_path, "checkpoint-4")


class _Touch:
    """A pickle payload: loading it creates a file (what a malicious custom_checkpoint_0.pkl would run)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_latest_skips_broken_checkpoints_with_a_warning_and_never_unpickles(tmp_path, caplog):
    for step in (2, 4, 6, 8):
        _make_checkpoint(tmp_path, f"checkpoint-{step}")
    (tmp_path / "checkpoint-8" / COMPLETE_NAME).unlink()  # killed before its marker
    (tmp_path / "checkpoint-6" / "model.safetensors").write_bytes(b"\x00" * 10)  # corrupt
    pwned = tmp_path / "pwned"
    torch.save(_Touch(pwned), tmp_path / "checkpoint-4" / "custom_checkpoint_0.pkl")  # old-style pickled state
    with caplog.at_level("WARNING"):
        assert find_checkpoint(tmp_path, "latest") == os.path.join(tmp_path, "checkpoint-2")
    assert "checkpoint-8: it was not completed" in caplog.text
    assert "checkpoint-6: model.safetensors is unreadable" in caplog.text
    assert "checkpoint-4: it holds pickled training state" in caplog.text
    with pytest.raises(ValueError, match="never loaded since a pickle can run code"):
        find_checkpoint(tmp_path, "checkpoint-4")
    assert not pwned.exists()


def test_training_state_round_trips_and_refuses_another_pyramid(tmp_path):
    model, generator = torch.nn.Linear(2, 1), torch.Generator().manual_seed(3)
    write_training_state(str(tmp_path), model, generator, "digest-a")
    expected = torch.rand(3, generator=generator)  # the stream after the saved state
    restored_model, restored = torch.nn.Linear(2, 1), torch.Generator()
    read_training_state(str(tmp_path), restored_model, restored, "digest-a")
    assert torch.equal(torch.rand(3, generator=restored), expected)
    restored_weights = restored_model.state_dict()
    assert all(torch.equal(value, restored_weights[name]) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match="trained on another image or pyramid"):
        read_training_state(str(tmp_path), restored_model, restored, "digest-b")


def test_an_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    import sinddm_pipeline.training_state as training_state

    check_writable(str(tmp_path))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(training_state.tempfile, "NamedTemporaryFile", denied)  # root ignores chmod: simulate it
    with pytest.raises(ValueError, match="is not writable \\(Permission denied\\): nothing was trained"):
        check_writable(str(tmp_path))


def test_a_kill_while_saving_the_pipeline_leaves_every_file_whole(tmp_path, monkeypatch):
    from conftest import tiny_pipeline

    import sinddm_pipeline.training_state as training_state
    from sinddm_pipeline import SinDDMPipeline

    first, second = tiny_pipeline(seed=0), tiny_pipeline(seed=1)
    save_pipeline_atomically(first, str(tmp_path))
    replace, calls = os.replace, []

    def killed_after_two(source, target):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(target)
        replace(source, target)

    monkeypatch.setattr(training_state.os, "replace", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        save_pipeline_atomically(second, str(tmp_path))
    monkeypatch.setattr(training_state.os, "replace", replace)
    assert len(calls) == 2 and not list(tmp_path.glob(".pipeline-*"))  # no staging folder left behind
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())  # every config whole (the old save's or the new one's)
    SinDDMPipeline.from_pretrained(tmp_path)  # still loads
    save_pipeline_atomically(second, str(tmp_path))
    loaded = SinDDMPipeline.from_pretrained(tmp_path).denoiser.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in second.denoiser.state_dict().items())


def test_resumed_loss_log_comes_from_the_checkpoint(tmp_path):
    write_loss_log(tmp_path, [(step, 1.0 / step) for step in range(1, 9)])  # the folder's log went on to 8
    _make_checkpoint(tmp_path, "checkpoint-4")
    _make_checkpoint(tmp_path, "checkpoint-6")
    write_loss_log(tmp_path / "checkpoint-6", [(1, 9.0), (6, 9.0)])
    assert resumed_loss_log(str(tmp_path / "checkpoint-6"), str(tmp_path)) == [(1, 9.0), (6, 9.0)]
    # A checkpoint without its own copy: the folder's log, cut at its step (no duplicated steps on resume).
    assert resumed_loss_log(str(tmp_path / "checkpoint-4"), str(tmp_path)) == [(s, 1.0 / s) for s in range(1, 5)]


def test_output_dir_guard(tmp_path):
    check_output_dir(str(tmp_path / "new"), overwrite=False, resuming=False)
    check_output_dir(str(tmp_path), overwrite=False, resuming=False)  # an empty folder is fine
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ValueError) as error:
        check_output_dir(str(tmp_path), overwrite=False, resuming=False)
    assert "already holds a model" in str(error.value)
    assert "--overwrite" in str(error.value) and "--resume_from_checkpoint latest" in str(error.value)
    check_output_dir(str(tmp_path), overwrite=True, resuming=False)
    check_output_dir(str(tmp_path), overwrite=False, resuming=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        check_output_dir(str(tmp_path / "file"), overwrite=True, resuming=False)


def test_clear_previous_run_removes_checkpoints_and_logs_only(tmp_path):
    for name in ["checkpoint-5", "checkpoint-10.tmp", "validation"]:
        _make_checkpoint(tmp_path, name)
    for name in ["loss_log.json", "loss_curve.png", "model_index.json", "notes.txt"]:
        (tmp_path / name).write_text("")
    removed = clear_previous_run(str(tmp_path))
    assert sorted(removed) == sorted(
        ["checkpoint-5", "checkpoint-10.tmp", "validation", "loss_log.json", "loss_curve.png"]
    )
    assert sorted(os.listdir(tmp_path)) == ["model_index.json", "notes.txt"]


# ---------------------------------------------------------------------------------------------------------------
# images


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda a: Image.fromarray(a[..., 0]), "converted L to RGB"),
        (lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 7, np.uint8)])), "alpha channel is dropped"),
        (lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257), "converted I;16 (high bit depth"),
        (lambda a: Image.fromarray(a).convert("P"), "converted P to RGB"),
        (lambda a: Image.fromarray(a[..., 0].astype(np.float32) / 255), "converted F (high bit depth"),
    ],
)
def test_image_modes_are_converted_with_a_log_line(caplog, make, fragment):
    array = np.asarray(synthetic_image(40, 30))
    caplog.set_level(logging.INFO, logger="sinddm_pipeline.image_io")
    rgb = to_rgb(make(array), name="photo.png")
    assert rgb.mode == "RGB" and rgb.size == (40, 30)
    assert any(fragment in record.getMessage() and "photo.png" in record.getMessage() for record in caplog.records)
    if "L to RGB" in fragment or "I;16" in fragment or "F (" in fragment:  # gray levels keep their brightness
        np.testing.assert_allclose(np.asarray(rgb)[..., 1], array[..., 0], atol=1)


def test_rgb_is_returned_unchanged(caplog):
    image = synthetic_image(40, 30)
    caplog.set_level(logging.INFO, logger="sinddm_pipeline.image_io")
    assert to_rgb(image) is image and not caplog.records


def test_sixteen_bit_png_file_is_read(tmp_path):
    array = np.asarray(synthetic_image(40, 30))[..., 0].astype(np.uint16) * 257
    Image.fromarray(array).save(tmp_path / "deep.png")
    rgb = load_training_image(tmp_path / "deep.png")
    np.testing.assert_allclose(np.asarray(rgb)[..., 0], array // 257, atol=1)


def test_unusable_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image at"):
        load_training_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="is a folder"):
        load_training_image(tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file PIL can read"):
        load_training_image(tmp_path / "notes.png")
    synthetic_image(40, 30).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="Cannot read the image"):
        load_training_image(tmp_path / "cut.png")


@pytest.mark.parametrize(("side", "message"), [(9000, r"at most 67,108,864 \(8192x8192\)"), (30000, "too large")])
def test_huge_image_headers_are_refused_before_decoding(tmp_path, side, message):
    png_header_only(tmp_path / "bomb.png", side, side)  # no pixel data: decoding would fail differently
    with pytest.raises(ValueError, match=message):
        load_training_image(tmp_path / "bomb.png")


# ---------------------------------------------------------------------------------------------------------------
# plots


@pytest.mark.parametrize("count", [1, 2, 500])
def test_loss_curve_image(count):
    losses = [(step, 1.0 / step) for step in range(1, count + 1)]
    image = loss_curve_image(losses)
    assert image.size == (640, 320) and image.mode == "RGB"
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 2  # something was drawn


def test_image_grid():
    grid = image_grid([synthetic_image(20, 10)] * 5, columns=4, padding=2)
    assert grid.size == (4 * 22 + 2, 2 * 12 + 2)
    with pytest.raises(ValueError):
        image_grid([])


# ---------------------------------------------------------------------------------------------------------------
# the Hub


def test_model_card_metadata_and_body():
    args = {"image_path": "/data/balloons.png", "max_train_steps": 120000, "hub_token": "hf_secret"}
    card = model_card("me/sinddm-balloons", args, has_loss_curve=True)
    assert card.data.library_name == "diffusers"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert card.data.tags == ["sinddm", "single-image"] and card.data.license == "mit"
    text = str(card)
    assert 'SinDDMPipeline.from_pretrained("me/sinddm-balloons")' in text
    assert "![training image](training_image.png)" in text and "![loss curve](loss_curve.png)" in text
    assert '"max_train_steps": 120000' in text and "balloons.png" in text
    assert "hf_secret" not in text
    assert "loss_curve.png" not in str(model_card("me/x", args, has_loss_curve=False))


def test_upload_ignores_checkpoints_and_the_loss_log():
    files = [
        "model_index.json",
        "README.md",
        "training_image.png",
        "loss_curve.png",
        "training_args.json",
        "denoiser/config.json",
        "denoiser/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "pyramid/diffusion_pytorch_model.safetensors",
        "validation/samples-0002000.png",
        "loss_log.json",
        "loss_log.json.tmp",
        "checkpoint-5000/model.safetensors",
        "checkpoint-5000/optimizer.bin",
        "checkpoint-5000/random_states_0.pkl",
        "checkpoint-10000.tmp/custom_checkpoint_0.pkl",
    ]
    uploaded = list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS))
    assert uploaded == files[:10]
