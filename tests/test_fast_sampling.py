"""pipe.enable_fast_sampling(): the probe's choice on each outcome, what it applies, the cache and the command lines."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import synthetic_image, tiny_pipeline

from sinddm_pipeline import SinDDMPipeline, fast_sampling
from sinddm_pipeline.fast_sampling import FAST_STEPS, choose_fast_sampling, fast_steps
from sinddm_pipeline.generate import main as generate


def fixed_timer(seconds: dict[str, float]):
    """A probe outcome: seconds per denoiser call by setting."""
    return lambda label, denoiser, sample, scale: seconds[label]


def test_bf16_is_chosen_where_the_probe_measures_it_faster():
    pipe = tiny_pipeline()
    choice = pipe.enable_fast_sampling(timer=fixed_timer({"fp32": 1.0, "fp32+cl": 0.8, "bf16+cl": 0.3}))
    assert (choice.dtype, choice.channels_last, choice.solver_order) == (torch.bfloat16, True, 2)
    assert not choice.bf16_slower and "bf16 measured faster" in choice.summary()
    assert pipe.denoiser.dtype == torch.bfloat16 and pipe.scheduler.config.solver_order == 2
    assert pipe.default_num_inference_steps(None) == list(FAST_STEPS[:2])  # the tiny pipeline's 2 scales
    assert pipe.default_num_inference_steps(7) == 7  # explicit steps still win


def test_from_pipe_keeps_the_fast_settings_of_the_pipeline_it_shares():
    from sinddm_pipeline.pipeline_sinddm_inpaint import SinDDMInpaintPipeline

    pipe = tiny_pipeline()
    choice = pipe.enable_fast_sampling(timer=fixed_timer({"fp32": 1.0, "fp32+cl": 0.8, "bf16+cl": 0.3}))
    inpaint = SinDDMInpaintPipeline.from_pipe(pipe)
    assert inpaint.denoiser is pipe.denoiser and pipe.denoiser.dtype == torch.bfloat16  # not cast back to fp32
    assert inpaint.scheduler.config.solver_order == 2
    assert inpaint.default_num_inference_steps(None) == choice.num_inference_steps
    exact = SinDDMInpaintPipeline.from_pipe(tiny_pipeline())
    assert exact.default_num_inference_steps(None) is None
    cast = SinDDMInpaintPipeline.from_pipe(pipe, torch_dtype=torch.float32)  # an explicit dtype still casts
    assert pipe.denoiser.dtype == cast.denoiser.dtype == torch.float32


@pytest.mark.parametrize(("fp32_cl", "channels_last"), [(0.8, True), (1.2, False)])
def test_bf16_is_not_chosen_where_the_probe_measures_it_slower(fp32_cl, channels_last):
    pipe = tiny_pipeline()
    choice = pipe.enable_fast_sampling(timer=fixed_timer({"fp32": 1.0, "fp32+cl": fp32_cl, "bf16+cl": 17.0}))
    assert (choice.dtype, choice.channels_last) == (torch.float32, channels_last)
    assert choice.bf16_slower and "bf16 measured slower than fp32 here" in choice.summary()
    assert pipe.denoiser.dtype == torch.float32


def test_a_bf16_gain_within_the_margin_is_not_taken():
    choice = choose_fast_sampling(tiny_pipeline(), fixed_timer({"fp32": 1.0, "fp32+cl": 1.0, "bf16+cl": 0.95}))
    assert choice.dtype == torch.float32 and "not faster than fp32 by the margin" in choice.reason


def test_the_real_probe_times_copies_once_per_process_and_samples_deterministically():
    pipe = tiny_pipeline()
    weights = {k: v.clone() for k, v in pipe.denoiser.state_dict().items()}
    first = choose_fast_sampling(pipe)
    assert list(first.timings) == ["fp32", "fp32+cl", "bf16+cl"] and all(t > 0 for t in first.timings.values())
    assert all(torch.equal(v, weights[k]) for k, v in pipe.denoiser.state_dict().items())  # its own never cast
    assert choose_fast_sampling(tiny_pipeline()).timings is first.timings  # same model config: cached
    pipe.enable_fast_sampling()
    images = [pipe(generator=torch.Generator().manual_seed(0), output_type="pt").images for _ in range(2)]
    assert torch.equal(*images) and images[0].shape == (1, 3, 72, 96)
    assert pipe.num_steps(pipe.plan(), pipe.default_num_inference_steps(None)) == sum(fast_steps(2))


def test_the_training_free_pipeline_keeps_its_own_fast_defaults():
    pipe = SinDDMPipeline.from_image(synthetic_image(96, 72))
    choice = pipe.enable_fast_sampling()
    assert choice.dtype == torch.float32 and not choice.timings
    assert choice.num_inference_steps == list(pipe.denoiser.config.num_inference_steps)


def test_generate_fast_prints_the_choice_and_bf16_warns_where_it_is_slower(tmp_path, monkeypatch, capsys, caplog):
    tiny_pipeline().save_pretrained(tmp_path / "model")
    args = ["--model", str(tmp_path / "model"), "--num_images", "1", "--device", "cpu"]
    (path,) = generate([*args, "--fast", "--output_dir", str(tmp_path / "fast")])
    assert "fast sampling: " in capsys.readouterr().out and path.endswith("sample_0000.png")
    monkeypatch.setattr(
        fast_sampling, "probe_denoiser", lambda *a, **k: {"fp32": 1.0, "fp32+cl": 0.9, "bf16+cl": 17.0}
    )
    with caplog.at_level(logging.WARNING):
        generate([*args, "--dtype", "bf16", "--num_inference_steps", "3", "--output_dir", str(tmp_path / "bf16")])
    assert "the probe measured bf16 slower than fp32 on this machine" in caplog.text
