"""The multi-scale scheduler (SPEC §2, §4, §5) against the official implementation's vectors."""

import numpy as np
import pytest
import torch
from conftest import shared_path
from golden import golden_meta, golden_scheduler, golden_tensors, official_tiny_model
from PIL import Image

from sinddm_pipeline import SinDDMScheduler
from sinddm_pipeline.pyramid import build_pyramid, pil_to_tensor

STEP_CASES = ["s0_t0_reblur", "s0_t50_reblur", "s2_t0_reblur", "s2_t30_ddpm", "s2_t30_reblur", "s3_t30_reblur"]


def test_start_timesteps_match_golden():
    assert golden_scheduler().start_timesteps == golden_meta()["t_ideal"]


@pytest.mark.parametrize("name", ["gammas", "betas", "alphas_cumprod"])
def test_schedule_arrays_match_golden(name):
    ours = getattr(golden_scheduler(), name)
    torch.testing.assert_close(ours, golden_tensors()[name], atol=1e-6, rtol=0)


def test_scheduler_from_the_image_pyramid_equals_the_golden_config():
    pyramid = build_pyramid(Image.open(shared_path("images", "balloons.png")))
    scheduler = SinDDMScheduler.from_pyramid(pyramid)
    torch.testing.assert_close(scheduler.gammas, golden_tensors()["gammas"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", STEP_CASES)
def test_step_matches_golden(case):
    golden = golden_tensors()
    scale, timestep = int(case[1]), int(case.split("_")[1][1:])

    def vector(name: str) -> torch.Tensor:
        return golden[f"step_{case}_{name}"]

    prev = (
        golden_scheduler()
        .step(
            vector("model_output"),
            timestep,
            vector("x_t"),
            scale=scale,
            blurry_sample=vector("blurry"),
            reblurring=case.endswith("reblur"),
            variance_noise=vector("noise"),
        )
        .prev_sample
    )
    torch.testing.assert_close(prev, vector("prev"), atol=1e-5, rtol=0)


def test_training_input_and_loss_match_golden():
    golden = golden_tensors()
    scheduler = golden_scheduler()
    x = pil_to_tensor(Image.fromarray(golden["pyramid_2"].numpy())).repeat(2, 1, 1, 1)
    blurry = pil_to_tensor(Image.fromarray(golden["blurry_2"].numpy())).repeat(2, 1, 1, 1)
    noise, timesteps = golden["train_s2_t30_noise"], torch.tensor([30, 30])
    noisy = scheduler.training_input(x, blurry, noise, timesteps, scale=2)
    torch.testing.assert_close(noisy, golden["train_s2_t30_x_noisy"], atol=1e-5, rtol=0)
    with torch.no_grad():
        loss = (noise - official_tiny_model("ema")(noisy, timesteps, 2).sample).abs().mean()
    torch.testing.assert_close(loss.reshape(1), golden["train_s2_t30_loss"], atol=1e-5, rtol=0)


def _tiny_scheduler(**kwargs) -> SinDDMScheduler:
    return SinDDMScheduler(scale_sizes=[[48, 64], [67, 90], [94, 126]], rescale_losses=[1.087, 0.777], **kwargs)


def test_config_round_trip(tmp_path):
    scheduler = _tiny_scheduler(max_sampling_gamma=0.5)
    scheduler.save_pretrained(tmp_path)
    loaded = SinDDMScheduler.from_pretrained(tmp_path)
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == {
        k: v for k, v in scheduler.config.items() if not k.startswith("_")
    }
    torch.testing.assert_close(loaded.gammas, scheduler.gammas, atol=0, rtol=0)
    assert loaded.start_timesteps == scheduler.start_timesteps


def test_set_timesteps_runs_from_start_minus_one_to_zero():
    scheduler = _tiny_scheduler()
    scheduler.set_timesteps(scale=0)
    assert scheduler.timesteps.tolist() == list(range(99, -1, -1))
    scheduler.set_timesteps(scale=2)
    assert scheduler.timesteps.tolist() == list(range(scheduler.start_timesteps[2] - 1, -1, -1))
    with pytest.raises(ValueError, match="scale"):
        scheduler.set_timesteps(scale=3)


def test_noising_to_t_equals_T_is_the_pure_noise_scale_0_starts_from():
    scheduler = _tiny_scheduler()
    sample, noise = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 3, 8, 8)
    assert torch.equal(scheduler.add_noise(sample, noise, 100), noise)
    a, s = float(scheduler.sqrt_alphas_cumprod[99]), float(scheduler.sqrt_one_minus_alphas_cumprod[99])
    assert torch.allclose(scheduler.add_noise(sample, noise, 99), a * sample + s * noise)
    for bad in (-1, 101):
        with pytest.raises(ValueError, match=r"timesteps must be in \[0, 100\]"):
            scheduler.add_noise(sample, noise, bad)


def test_ddpm_step_is_deterministic_with_a_seeded_generator():
    scheduler = _tiny_scheduler()
    eps, x = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    a = scheduler.step(eps, 40, x, scale=0, generator=torch.Generator().manual_seed(1)).prev_sample
    b = scheduler.step(eps, 40, x, scale=0, generator=torch.Generator().manual_seed(1)).prev_sample
    c = scheduler.step(eps, 40, x, scale=0, generator=torch.Generator().manual_seed(2)).prev_sample
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_reblurring_step_needs_the_blurry_image():
    scheduler = _tiny_scheduler()
    with pytest.raises(ValueError, match="blurry_sample"):
        scheduler.step(torch.zeros(1, 3, 8, 8), 10, torch.zeros(1, 3, 8, 8), scale=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale_sizes": [], "rescale_losses": []}, "scale_sizes"),
        ({"scale_sizes": [[48, 64], [67, 90]], "rescale_losses": []}, "rescale_losses"),
        ({"scale_sizes": [[48, 64], [67, 90]], "rescale_losses": [-1.0]}, "rescale_losses"),
        ({"scale_sizes": [[48, 64], [67, 90]], "rescale_losses": [float("nan")]}, "rescale_losses"),
        ({"scale_sizes": [[48, 64], [100_000, 100_000]], "rescale_losses": [1.0]}, "at most 16,777,216 pixels"),
        ({"scale_sizes": [[48, 64]] * 100, "rescale_losses": [1.0] * 99}, "100 scales; at most 32"),
        ({"scale_sizes": [[48, 64]], "num_train_timesteps": 10**7}, r"num_train_timesteps must be an int in \[2, "),
        ({"scale_sizes": [[48, 64]], "num_train_timesteps": 100.5}, "num_train_timesteps must be an int"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SinDDMScheduler(**kwargs)


def test_a_flat_image_gives_a_usable_schedule():
    scheduler = SinDDMScheduler(scale_sizes=[[48, 64], [67, 90]], rescale_losses=[0.0])
    assert scheduler.start_timesteps == [100, 1]
    assert torch.all(scheduler.gammas == 1)


def test_strided_timesteps_are_evenly_spaced_and_keep_both_ends():
    scheduler = _tiny_scheduler()
    scheduler.set_timesteps(scale=0, num_inference_steps=10)
    assert scheduler.timesteps.tolist() == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]
    assert scheduler.previous_timestep(99) == 88 and scheduler.previous_timestep(0) == -1
    scheduler.set_timesteps(scale=1, num_inference_steps=1000)  # more than there are: the exact loop
    assert scheduler.timesteps.tolist() == list(range(scheduler.start_timesteps[1] - 1, -1, -1))
    for bad in (0, 1, 2.5, True):
        with pytest.raises(ValueError, match="num_inference_steps"):
            scheduler.set_timesteps(scale=0, num_inference_steps=bad)


def test_respaced_ddpm_coefficients_reduce_to_the_exact_ones_for_single_steps():
    scheduler = _tiny_scheduler()
    a = scheduler._alphas_cumprod64
    for t in (1, 30, 98):
        beta = 1 - a[t] / a[t - 1]
        c1 = beta * np.sqrt(a[t - 1]) / (1 - a[t])
        assert c1 == pytest.approx(float(scheduler.posterior_mean_coef1[t]), rel=1e-5)
    # a jump of two steps composes the two alphas
    c1, c2, std = scheduler._ddpm_coefficients(50, 48)
    beta = 1 - a[50] / a[48]
    assert c1 == pytest.approx(beta * np.sqrt(a[48]) / (1 - a[50]))
    assert std == pytest.approx(np.sqrt(beta * (1 - a[48]) / (1 - a[50])))


def test_strided_reblurring_step_lands_on_the_next_timestep():
    scheduler = _tiny_scheduler()
    scheduler.set_timesteps(scale=1, num_inference_steps=5)
    t, prev_t = 38, scheduler.previous_timestep(38)
    assert prev_t == 26
    torch.manual_seed(0)
    eps, x, blurry = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.rand(1, 3, 8, 8) * 2 - 1
    out = scheduler.step(eps, t, x, scale=1, blurry_sample=blurry).prev_sample
    x0 = scheduler.predict_original_sample(eps, t, x)
    d = scheduler.deblur(x0, blurry, t, 1)
    g = scheduler.gamma(1, prev_t)
    target = (g * blurry + (1 - g) * d).clamp(-1, 1)
    direction = (x - scheduler.sqrt_alphas_cumprod[t] * x0.clamp(-1, 1)) / scheduler.sqrt_one_minus_alphas_cumprod[t]
    expected = (
        scheduler.sqrt_alphas_cumprod[prev_t] * target + (1 - scheduler.alphas_cumprod[prev_t]).sqrt() * direction
    )
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# solver_order 2: the multistep reblurring solver (a speed-up, not the reference)


def _reblurring_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(2, 1, 3, 8, 8, generator=generator)
    x = torch.randn(1, 3, 8, 8, generator=generator)
    blurry = torch.rand(1, 3, 8, 8, generator=generator) * 2 - 1
    return eps[0], eps[1], x, blurry


def test_solver_order_defaults_to_the_reference_and_is_validated(tmp_path):
    assert _tiny_scheduler().config.solver_order == 1
    legacy = {k: v for k, v in _tiny_scheduler().config.items() if k != "solver_order"}  # configs saved before it
    assert SinDDMScheduler.from_config(legacy).config.solver_order == 1
    second = SinDDMScheduler.from_config(_tiny_scheduler().config, solver_order=2)
    second.save_pretrained(tmp_path)
    assert SinDDMScheduler.from_pretrained(tmp_path).config.solver_order == 2
    with pytest.raises(ValueError, match="solver_order must be 1 .* or 2"):
        _tiny_scheduler(solver_order=3)


def test_second_order_step_extrapolates_the_deblurred_estimate_in_log_snr():
    first, second = _tiny_scheduler(), _tiny_scheduler(solver_order=2)
    eps_a, eps_b, x, blurry = _reblurring_inputs()
    for scheduler in (first, second):
        scheduler.set_timesteps(scale=1, num_inference_steps=5)
    t_a, t_b = 38, 26
    t_c = second.previous_timestep(t_b)
    # the first step of a stage has no history: the reference step
    out_a = second.step(eps_a, t_a, x, scale=1, blurry_sample=blurry)
    assert torch.equal(out_a.prev_sample, first.step(eps_a, t_a, x, scale=1, blurry_sample=blurry).prev_sample)
    # the second: D = (1 + 1/(2r))·d - 1/(2r)·d_a, r = (lambda_b - lambda_a) / (lambda_c - lambda_b)
    x_b = out_a.prev_sample
    out_b = second.step(eps_b, t_b, x_b, scale=1, blurry_sample=blurry).prev_sample
    lam = {t: 0.5 * np.log(a / (1 - a)) for t, a in ((t, float(second._alphas_cumprod64[t])) for t in (t_a, t_b, t_c))}
    r = (lam[t_b] - lam[t_a]) / (lam[t_c] - lam[t_b])

    def deblurred(eps: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        return second.deblur(second.predict_original_sample(eps, t, sample), blurry, t, 1)

    d = (1 + 0.5 / r) * deblurred(eps_b, t_b, x_b) - 0.5 / r * deblurred(eps_a, t_a, x)
    g_b, g_c = second.gamma(1, t_b), second.gamma(1, t_c)
    target = (g_c * blurry + (1 - g_c) * d).clamp(-1, 1)
    x0 = (g_b * blurry + (1 - g_b) * d).clamp(-1, 1)
    direction = (x_b - second.sqrt_alphas_cumprod[t_b] * x0) / second.sqrt_one_minus_alphas_cumprod[t_b]
    expected = second.sqrt_alphas_cumprod[t_c] * target + (1 - second.alphas_cumprod[t_c]).sqrt() * direction
    torch.testing.assert_close(out_b, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(out_b, first.step(eps_b, t_b, x_b, scale=1, blurry_sample=blurry).prev_sample)


def test_set_timesteps_starts_every_stage_without_history():
    scheduler = _tiny_scheduler(solver_order=2)
    eps_a, eps_b, x, blurry = _reblurring_inputs()
    runs = []
    for _ in range(2):
        scheduler.set_timesteps(scale=1, num_inference_steps=4)
        sample = x
        for t, eps in zip(scheduler.timesteps.tolist(), [eps_a, eps_b, eps_a, eps_b], strict=True):
            sample = scheduler.step(eps, t, sample, scale=1, blurry_sample=blurry).prev_sample
        runs.append(sample)
    assert torch.equal(runs[0], runs[1])


def test_second_order_leaves_the_ddpm_steps_alone():
    first, second = _tiny_scheduler(), _tiny_scheduler(solver_order=2)
    eps_a, eps_b, x, blurry = _reblurring_inputs()
    noise = torch.randn(1, 3, 8, 8)
    for scale, reblurring in ((0, True), (1, False)):
        for scheduler in (first, second):
            scheduler.set_timesteps(scale=scale)
        for eps, t in ((eps_a, 20), (eps_b, 19)):
            kwargs = dict(scale=scale, blurry_sample=blurry, reblurring=reblurring, variance_noise=noise)
            a = first.step(eps, t, x, **kwargs).prev_sample
            assert torch.equal(second.step(eps, t, x, **kwargs).prev_sample, a)


def test_set_timesteps_takes_the_step_count_first_as_diffusers_schedulers_do():
    scheduler = _tiny_scheduler()
    scheduler.set_timesteps(10, scale=0)
    positional = scheduler.timesteps.tolist()
    scheduler.set_timesteps(num_inference_steps=10, scale=0)
    assert positional == scheduler.timesteps.tolist() and len(positional) == 10
    with pytest.raises(TypeError):
        scheduler.set_timesteps(10, "cpu", 1)  # scale is a keyword
