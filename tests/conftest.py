"""Shared fixtures: the ../shared folder (golden vectors, images) and tiny SinDDM pipelines."""

from __future__ import annotations

import os
from pathlib import Path

# One thread per process: the suite also starts subprocesses (training launchers, offline loading), and on a
# 2-core machine oversubscribed OpenMP threads make tiny models 10-100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
from sinddm_pipeline.pyramid import build_pyramid, pil_to_tensor
from sinddm_pipeline.training import TrainingData, training_loss

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason when it is absent (a fresh clone alone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared fixtures live beside the checkout (../shared) in CI")
    return path


def synthetic_image(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A small RGB image with structure at several scales (smooth gradients plus blobs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=-1)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 9)
        base[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = rng.uniform(0, 1, size=3)
    return Image.fromarray((base * 255).clip(0, 255).astype(np.uint8))


def tiny_pipeline(image: Image.Image | None = None, dim: int = 8, seed: int = 0) -> SinDDMPipeline:
    """A randomly initialised pipeline on a pyramid of ``image`` (a small synthetic one by default)."""
    pyramid = build_pyramid(image if image is not None else synthetic_image())
    torch.manual_seed(seed)
    pipe = SinDDMPipeline(
        denoiser=SinDDMModel(dim=dim),
        scheduler=SinDDMScheduler.from_pyramid(pyramid),
        pyramid=SinDDMPyramid.from_pyramid(pyramid),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def train_tiny(pipe, steps, scales, batch_size=8, crop_size=48, lr=3e-3, seed=0):
    """A few hundred Adam steps of the SinDDM loss on ``scales`` of the pipeline's own pyramid (seconds on a CPU)."""
    pyramid = pipe.pyramid
    data = TrainingData(
        images=[pyramid.image(i) for i in range(pyramid.num_scales)],
        blurry=[None] + [pil_to_tensor(pyramid.blurry_pil(i)) for i in range(1, pyramid.num_scales)],
    )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(pipe.denoiser.parameters(), lr=lr)
    pipe.denoiser.train()
    for step in range(steps):
        scale = scales[step % len(scales)]
        x, blurry = data.batch(scale, batch_size, crop_size, generator=generator)
        loss = training_loss(pipe.denoiser, pipe.scheduler, x, blurry, scale, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pipe.denoiser.eval()
    return pipe


@pytest.fixture
def tiny_pipe() -> SinDDMPipeline:
    return tiny_pipeline()


@pytest.fixture
def hub_calls(monkeypatch) -> dict:
    """Record HfApi.create_repo / upload_folder calls instead of reaching the Hub (what would be uploaded, after the
    ignore patterns, with the uploaded card and model_index)."""
    import json
    import types

    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        return types.SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"me/{repo_id}")

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        kwargs["uploaded"] = sorted(filter_repo_objects(files, ignore_patterns=kwargs["ignore_patterns"]))
        if (folder / "README.md").exists():
            kwargs["card"] = (folder / "README.md").read_text()
        kwargs["uploaded_model_index"] = json.loads((folder / "model_index.json").read_text())
        calls["upload_folder"] = {"token": self.token, **kwargs}
        return "https://huggingface.co/me/x/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def png_header_only(path, width: int, height: int) -> None:
    """A PNG file whose header claims ``width`` x ``height`` with no pixel data: what a decompression bomb looks like
    to a reader that checks the size before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def save_tiny_clip(folder) -> None:
    """A random CLIPModel (text and vision: hidden 32, 2 layers, 2 heads; vision 32 px, patch 8; projection 16) and a
    character-level CLIPTokenizer, saved together in ``folder``, as a real CLIP repo is laid out."""
    import json

    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.!-,'")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    special = {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"]}
    config = CLIPConfig(
        text_config={**layers, **special, "vocab_size": len(vocab), "max_position_embeddings": 48, "pad_token_id": 1},
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def quiet_pipe(cls, pipe):
    """``cls.from_pipe(pipe)`` (the same components) with its progress bar off."""
    out = cls.from_pipe(pipe)
    out.set_progress_bar_config(disable=True)
    return out


def fast_shipped_pipe(cls):
    """The shipped model as ``cls`` with the fast settings (second-order solver, steps [10, 6, 5, 4, 3])."""
    pipe = cls.from_pretrained(Path(__file__).resolve().parents[1] / "models" / "hubble-sinddm")
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_fast_sampling()
    return pipe


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)
