"""Loading the official implementation's golden vectors (../shared/fixtures), skipping when absent."""

from __future__ import annotations

import json

import torch
from conftest import shared_path
from safetensors.torch import load_file

from sinddm_pipeline import SinDDMModel, SinDDMScheduler
from sinddm_pipeline.original_checkpoint import (
    convert_denoiser_state_dict,
    denoiser_dim,
    load_original_checkpoint,
)


def golden_tensors() -> dict[str, torch.Tensor]:
    return load_file(shared_path("fixtures", "golden_balloons.safetensors"))


def golden_meta() -> dict:
    return json.loads(shared_path("fixtures", "golden_balloons.json").read_text())


def golden_scheduler() -> SinDDMScheduler:
    meta = golden_meta()
    return SinDDMScheduler(
        scale_sizes=[[h, w] for w, h in meta["sizes_wh"]],
        rescale_losses=meta["rescale_losses"],
        scale_factor=meta["scale_factor"],
    )


def official_tiny_model(which: str = "ema") -> SinDDMModel:
    """The dim-16 denoiser of ../shared/fixtures/original_format_tiny_dim16.pt (its ``which`` weights)."""
    checkpoint = load_original_checkpoint(shared_path("fixtures", "original_format_tiny_dim16.pt"))
    model = SinDDMModel(dim=denoiser_dim(checkpoint[which]))
    model.load_state_dict(convert_denoiser_state_dict(checkpoint[which]))
    return model.eval()
