"""scripts/convert_original_checkpoint.py: official `model-N.pt` + training image -> SinDDMPipeline folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from conftest import shared_path, synthetic_image
from golden import golden_tensors

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.original_checkpoint import convert_denoiser_state_dict, load_original_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "convert_original_checkpoint.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_original_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert_script = _load_script()


def fixture_checkpoint() -> Path:
    return shared_path("fixtures", "original_format_tiny_dim16.pt")


def balloons() -> Path:
    return shared_path("images", "balloons.png")


def run(checkpoint, image, output_dir, *extra: str) -> int:
    argv = ["--checkpoint", str(checkpoint), "--image", str(image), "--output_dir", str(output_dir), *extra]
    return convert_script.main(argv)


def assert_one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("converted")
    assert run(fixture_checkpoint(), balloons(), output_dir) == 0
    return output_dir


def test_converted_pipeline_reproduces_the_official_denoiser(converted):
    """The saved folder loads with from_pretrained and its denoiser gives the official outputs (1e-5)."""
    assert (converted / "model_index.json").exists()
    assert not list(converted.rglob("*.bin")) and not list(converted.rglob("*.pkl"))
    pipe = SinDDMPipeline.from_pretrained(converted)
    assert pipe.scheduler.config.scale_sizes == [[48, 64], [67, 90], [94, 126], [133, 177], [186, 248]]
    assert pipe.pyramid.pil(4).size == (248, 186)
    golden = golden_tensors()
    for scale, timestep in [(0, 99), (2, 37), (4, 3)]:
        sample = golden[f"denoiser_s{scale}_t{timestep}_in"]
        with torch.no_grad():
            out = pipe.denoiser(sample, torch.full((2,), timestep), scale).sample
        torch.testing.assert_close(out, golden[f"denoiser_s{scale}_t{timestep}_out"], atol=1e-5, rtol=0)


def test_use_model_weights_converts_the_raw_weights(tmp_path):
    assert run(fixture_checkpoint(), balloons(), tmp_path, "--use_model_weights") == 0
    expected = convert_denoiser_state_dict(load_original_checkpoint(fixture_checkpoint())["model"])
    loaded = SinDDMPipeline.from_pretrained(tmp_path).denoiser.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(loaded[name], value, atol=0, rtol=0)


def test_output_dir_holding_a_model_needs_overwrite(converted, tmp_path, capsys):
    assert run(fixture_checkpoint(), balloons(), converted) == 2
    assert_one_line_error(capsys, "already holds a model", "--overwrite")
    target = tmp_path / "again"
    assert run(fixture_checkpoint(), balloons(), target) == 0
    assert run(fixture_checkpoint(), balloons(), target, "--overwrite") == 0


class _RunsShellCommand:
    """Pickles as a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "model-12.pt"
    torch.save({"step": 12, "ema": _RunsShellCommand(f"touch {marker}")}, checkpoint)
    assert run(checkpoint, balloons(), tmp_path / "out") == 2
    assert_one_line_error(capsys, "allow-list", "not loaded")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    torch.load(checkpoint, weights_only=False)  # the file is a live exploit: unrestricted loading runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"just some text, not a checkpoint\n", "not a torch checkpoint"),
        (None, "expected a dict with an 'ema' state dict"),  # a torch file of another kind
    ],
)
def test_non_checkpoints_are_refused(tmp_path, capsys, content, fragment):
    checkpoint = tmp_path / "model-1.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, checkpoint)
    else:
        checkpoint.write_bytes(content)
    assert run(checkpoint, balloons(), tmp_path / "out") == 2
    assert_one_line_error(capsys, fragment)


def test_missing_checkpoint_is_refused(tmp_path, capsys):
    assert run(tmp_path / "nope.pt", balloons(), tmp_path / "out") == 2
    assert_one_line_error(capsys, "No checkpoint file")


@pytest.mark.parametrize("which", ["forest", "synthetic"])
def test_wrong_image_is_refused(tmp_path, capsys, which):
    """forest.png gives 5 scales too but another blur schedule; a small image gives a different scale count."""
    if which == "forest":
        image = shared_path("images", "forest.png")
        fragment = "blur schedule (gammas) differs"
    else:
        image = tmp_path / "small.png"
        synthetic_image(88, 51).save(image)
        fragment = "trained on 5 scales"
    assert run(fixture_checkpoint(), image, tmp_path / "out") == 2
    assert_one_line_error(capsys, "Wrong image for this checkpoint", fragment)
    assert not (tmp_path / "out").exists()
