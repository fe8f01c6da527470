"""Reading checkpoints of the official SinDDM code (``model-N.pt``) without running arbitrary pickle code.

An official checkpoint is a pickled dict ``{step, model, ema, sched, running_loss, running_scale}`` whose state
dicts hold the diffusion buffers and the denoiser weights under ``denoise_fn.*``. It is opened with
``torch.load(weights_only=True)``: only tensors, plain containers and ``collections.Counter`` (the LR
scheduler's milestones) are allowed, so a file that holds anything else is refused before any of it runs.

Example:
    >>> from sinddm_pipeline.original_checkpoint import load_original_checkpoint, convert_denoiser_state_dict
    >>> checkpoint = load_original_checkpoint("model-12.pt")  # doctest: +SKIP
    >>> weights = convert_denoiser_state_dict(checkpoint["ema"])  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import zipfile

import torch

REQUIRED_KEYS = ("ema",)

_BLOCK_RENAMES = {
    "mlp.1": "cond_mlp.1",
    "time_reshape": "cond_proj",
    "ds_conv": "depthwise_conv",
    "net.0": "conv1",
    "net.2": "conv2",
    "res_conv": "residual_conv",
}
_BLOCK_KEY = re.compile(r"^denoise_fn\.l([1-4])\.(.+)\.(weight|bias)$")
_TOP_RENAMES = {"time_mlp.0": "cond_mlp.0", "time_mlp.2": "cond_mlp.2", "final_conv.0": "conv_out"}
_TOP_KEY = re.compile(r"^denoise_fn\.(time_mlp\.[02]|final_conv\.0)\.(weight|bias)$")


class OriginalCheckpointError(ValueError):
    """The file is not a checkpoint of the official SinDDM code, or holds something not allowed."""


def load_original_checkpoint(path: str | os.PathLike) -> dict:
    """Load an official SinDDM checkpoint safely (allow-listed unpickling, CPU tensors).

    Raises:
        OriginalCheckpointError: if the file is missing, is no torch checkpoint, holds objects outside the
            allow-list, or lacks the ``ema`` state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OriginalCheckpointError(f"No checkpoint file at {path!r}.")
    if not zipfile.is_zipfile(path):
        raise OriginalCheckpointError(
            f"{path!r} is not a torch checkpoint (expected the zip-based file written by torch.save, "
            "like the official model-N.pt)."
        )
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        raise OriginalCheckpointError(
            f"{path!r} holds objects outside the allow-list of an official SinDDM checkpoint (tensors, dicts, "
            f"lists, numbers, collections.Counter); it was not loaded. Details: {error}"
        ) from error
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in REQUIRED_KEYS):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise OriginalCheckpointError(
            f"{path!r} is not an official SinDDM checkpoint: expected a dict with an 'ema' state dict "
            f"(and step, model, sched, ...), found {found}."
        )
    return checkpoint


def convert_denoiser_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the official ``denoise_fn.*`` weights to [`SinDDMModel`] parameter names.

    The diffusion buffers (betas, gammas, ...) are not weights of the denoiser and are left out: our scheduler
    recomputes them from its config.
    """
    converted = {}
    for key, value in state_dict.items():
        if match := _BLOCK_KEY.match(key):
            block, name, kind = match.groups()
            if name not in _BLOCK_RENAMES:
                raise OriginalCheckpointError(f"Unexpected denoiser weight {key!r} in the checkpoint.")
            converted[f"blocks.{int(block) - 1}.{_BLOCK_RENAMES[name]}.{kind}"] = value
        elif match := _TOP_KEY.match(key):
            name, kind = match.groups()
            converted[f"{_TOP_RENAMES[name]}.{kind}"] = value
        elif key.startswith("denoise_fn."):
            raise OriginalCheckpointError(f"Unexpected denoiser weight {key!r} in the checkpoint.")
    if "conv_out.weight" not in converted:
        raise OriginalCheckpointError("The state dict holds no SinDDM denoiser weights (denoise_fn.*).")
    return converted


def denoiser_dim(state_dict: dict[str, torch.Tensor]) -> int:
    """The ``dim`` of the official denoiser: the output channels of its second block."""
    return int(state_dict["denoise_fn.l2.net.0.weight"].shape[0])
