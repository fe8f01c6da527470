"""Sharing a SinDDM model on the Hugging Face Hub, from a pipeline or a folder (e.g. a `train_sinddm.py` output).

[`prepare_hub_folder`] writes exactly what is pushed (the pipeline, model card, training image, sample grid and the
code for vanilla diffusers), [`push_to_hub`] uploads it, [`push_training_output`] is `train_sinddm.py
--push_to_hub`. The folder and card themselves are made by [`~sinddm_pipeline.hub_folder`]; this module adds
loading a folder's pipeline.

Example:
    >>> from sinddm_pipeline.hub import model_card
    >>> card = model_card("me/sinddm-balloons", {"image_path": "balloons.png", "max_train_steps": 120000})
    >>> card.data.library_name, card.data.pipeline_tag, card.data.tags
    ('diffusers', 'unconditional-image-generation', ['sinddm', 'single-image'])
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from . import hub_folder
from .hub_folder import (
    CARD_FILES,
    LOSS_CURVE_NAME,
    SAMPLES_NAME,
    TRAINING_IMAGE_NAME,
    UPLOAD_IGNORE_PATTERNS,
    model_card,
)
from .pipeline_sinddm import SinDDMPipeline

__all__ = [
    "CARD_FILES",
    "LOSS_CURVE_NAME",
    "SAMPLES_NAME",
    "TRAINING_IMAGE_NAME",
    "UPLOAD_IGNORE_PATTERNS",
    "model_card",
    "prepare_hub_folder",
    "push_to_hub",
    "push_training_output",
]


def prepare_hub_folder(pipeline_or_folder: Any, out_dir: str | os.PathLike, *args: Any, **kwargs: Any) -> Path:
    """[`~sinddm_pipeline.hub_folder.prepare_hub_folder`] (same arguments), a folder's pipeline loaded with
    `SinDDMPipeline.from_pretrained`.

    Example:
        >>> import tempfile
        >>> from sinddm_pipeline.hub import prepare_hub_folder
        >>> folder = prepare_hub_folder("models/hubble-sinddm", tempfile.mkdtemp(), num_grid_samples=0)
        >>> sorted(path.name for path in folder.iterdir() if path.is_file())
        ['README.md', 'model_index.json', 'sinddm_pipeline.py', 'training_image.png']
    """
    kwargs.setdefault("load", SinDDMPipeline.from_pretrained)
    return hub_folder.prepare_hub_folder(pipeline_or_folder, out_dir, *args, **kwargs)


def push_to_hub(pipeline_or_folder: Any, repo_id: str, **kwargs: Any):
    """[`~sinddm_pipeline.hub_folder.push_to_hub`] (same arguments), a folder's pipeline loaded with
    `SinDDMPipeline.from_pretrained`.

    Example:
        >>> from sinddm_pipeline.hub import push_to_hub
        >>> push_to_hub("models/hubble-sinddm", "me/sinddm-hubble", private=True)  # doctest: +SKIP
    """
    kwargs.setdefault("load", SinDDMPipeline.from_pretrained)
    return hub_folder.push_to_hub(pipeline_or_folder, repo_id, **kwargs)


def push_training_output(args: argparse.Namespace) -> str:
    """Push a `train_sinddm.py` output folder: the pipeline, card, thumbnail, samples, code (no checkpoints).

    The card, thumbnail and sample grid are also written into ``args.output_dir``; its ``model_index.json`` is left
    as it is (the remote-code one only goes to the Hub).

    Args:
        args: the training arguments; uses ``output_dir``, ``hub_model_id`` (default: the folder's name),
            ``hub_private_repo``, ``hub_token`` and ``seed`` (of the sample grid, default 0).

    Returns:
        The repo id (``user/name``).
    """
    api = HfApi(token=args.hub_token)
    repo_name = args.hub_model_id or Path(args.output_dir).resolve().name
    repo_id = api.create_repo(repo_name, private=args.hub_private_repo, exist_ok=True).repo_id
    training_args = {key: value for key, value in vars(args).items() if key not in hub_folder.SECRET_ARGS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare_hub_folder(
            args.output_dir, Path(tmp) / "upload", training_args, repo_id, seed=getattr(args, "seed", None) or 0
        )
        for name in CARD_FILES:
            shutil.copy2(folder / name, Path(args.output_dir) / name)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message="Upload SinDDM pipeline trained with train_sinddm.py",
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        )
    return repo_id
