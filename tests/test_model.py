"""The denoiser (SPEC §3) against the official implementation's outputs."""

import pytest
import torch
from golden import golden_tensors, official_tiny_model

from sinddm_pipeline import SinDDMModel


@pytest.mark.parametrize(("scale", "timestep"), [(0, 99), (2, 37), (4, 3)])
def test_denoiser_matches_golden_outputs(scale, timestep):
    golden = golden_tensors()
    model = official_tiny_model("ema")
    sample = golden[f"denoiser_s{scale}_t{timestep}_in"]
    with torch.no_grad():
        out = model(sample, torch.full((sample.shape[0],), timestep), scale).sample
    torch.testing.assert_close(out, golden[f"denoiser_s{scale}_t{timestep}_out"], atol=1e-5, rtol=0)


def test_scalar_and_batched_timesteps_agree():
    torch.manual_seed(0)
    model = SinDDMModel(dim=8).eval()
    sample = torch.randn(3, 3, 17, 23)
    with torch.no_grad():
        a = model(sample, 5, 1).sample
        b = model(sample, torch.tensor([5, 5, 5]), torch.tensor([1, 1, 1])).sample
        (c,) = model(sample, torch.tensor(5), 1, return_dict=False)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, c, atol=0, rtol=0)


@pytest.mark.parametrize("size", [(8, 8), (31, 57), (100, 12)])
def test_any_input_size(size):
    model = SinDDMModel(dim=8)
    assert model(torch.randn(2, 3, *size), 10, 0).sample.shape == (2, 3, *size)


def test_default_size_matches_the_paper():
    assert SinDDMModel().config.dim == 160
    assert sum(p.numel() for p in SinDDMModel().parameters()) == 1_106_772


def test_odd_dim_is_refused():
    with pytest.raises(ValueError, match="dim"):
        SinDDMModel(dim=15)


@pytest.mark.parametrize("dim", [100_000, 0, 64.0, True])
def test_a_dim_out_of_range_is_refused_before_any_allocation(dim):
    with pytest.raises(ValueError, match=r"dim must be an int in \[2, 1,024\]"):
        SinDDMModel(dim=dim)  # 100000 would be ~450 G parameters
