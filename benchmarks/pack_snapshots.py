"""Pack a training run's EMA weights at a few of its checkpoints as ready pipelines, in tar files of a bounded size.

    python benchmarks/pack_snapshots.py RUN_DIR OUT_DIR --count 4 --max_file_mb 15

For a time-to-quality run on a lent GPU (benchmarks/gpu_suite.sh), whose files come back in at most 8 files of
16 MB: RUN_DIR is a train_sinddm.py output folder; ``count`` checkpoints (evenly spaced, always the last) become
``step-<N>/`` pipeline folders (the run's final pipeline with that checkpoint's EMA denoiser weights), packed with the
run's logs into ``OUT_DIR/snapshots-<i>.tar``. Unpack with ``tar -xf`` and load each with
``SinDDMPipeline.from_pretrained("step-<N>")``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sinddm_pipeline.training_state import list_checkpoints  # noqa: E402

DENOISER_WEIGHTS = os.path.join("denoiser", "diffusion_pytorch_model.safetensors")
RUN_FILES = ("loss_log.json", "training_args.json", "loss_curve.png")
EMA_FILE = "custom_checkpoint_0.pkl"  # the first object registered for checkpointing in train_sinddm.py: the EMA


def evenly_spaced(items: list, count: int) -> list:
    """``count`` items spread over ``items``, the last always among them."""
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[round(len(items) - 1 - i * step)] for i in reversed(range(count))]


def disk_size(path: str) -> int:
    """Bytes in a file, or in every file under a folder."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def snapshot_pipeline(run_dir: str, checkpoint: str, destination: str) -> None:
    """``destination``: the run's pipeline folder with the EMA denoiser weights of ``checkpoint``."""
    for folder in ("denoiser", "scheduler", "pyramid"):
        shutil.copytree(os.path.join(run_dir, folder), os.path.join(destination, folder))
    shutil.copy(os.path.join(run_dir, "model_index.json"), destination)
    ema = torch.load(os.path.join(checkpoint, EMA_FILE), map_location="cpu", weights_only=True)["model"]
    save_file({name: tensor.contiguous() for name, tensor in ema.items()}, os.path.join(destination, DENOISER_WEIGHTS))


def pack(run_dir: str, out_dir: str, count: int, max_file_mb: float) -> list[str]:
    """Write the tar files; return their paths."""
    checkpoints = evenly_spaced(list_checkpoints(run_dir), count)
    if not checkpoints:
        raise ValueError(f"{run_dir} holds no checkpoint-<step> folder.")
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        members = [name for name in RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
        for step, path in checkpoints:
            snapshot_pipeline(run_dir, path, os.path.join(staging, f"step-{step}"))
            members.append(f"step-{step}")
        groups: list[list[str]] = [[]]
        sizes = [0.0]
        for member in members:
            size = disk_size(os.path.join(run_dir if member in RUN_FILES else staging, member))
            if groups[-1] and sizes[-1] + size > max_file_mb * 2**20:
                groups.append([])
                sizes.append(0.0)
            groups[-1].append(member)
            sizes[-1] += size
        paths = []
        for index, group in enumerate(groups):
            path = os.path.join(out_dir, f"snapshots-{index}.tar")
            with tarfile.open(path, "w") as tar:
                for member in group:
                    tar.add(os.path.join(run_dir if member in RUN_FILES else staging, member), arcname=member)
                if index == 0:
                    listing = json.dumps({"steps": [step for step, _ in checkpoints], "files": groups}).encode()
                    info = tarfile.TarInfo("snapshots.json")
                    info.size = len(listing)
                    tar.addfile(info, io.BytesIO(listing))
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--count", type=int, default=4, help="checkpoints to keep (evenly spaced, the last included)")
    parser.add_argument("--max_file_mb", type=float, default=15.0, help="start a new tar file beyond this size")
    args = parser.parse_args(argv)
    for path in pack(args.run_dir, args.out_dir, args.count, args.max_file_mb):
        print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
