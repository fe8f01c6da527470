"""Checkpoint folders of a training run: atomic writes, finding `latest`, pruning, guarding output folders,
the loss log and the random number generators that a resumed run continues exactly.

Nothing is unpickled on resume: accelerate's own files are read with ``weights_only=True``, and this project's
state (the EMA weights, the scale generator, the pyramid's digest) is ``training_state.safetensors``. A checkpoint is
complete when its ``checkpoint_complete.json`` (written last) is there; `find_checkpoint("latest")` skips, with a
warning, any newer checkpoint that is incomplete or unreadable.

Example:
    >>> import tempfile
    >>> from sinddm_pipeline.training_state import check_writable, find_checkpoint
    >>> folder = tempfile.mkdtemp()
    >>> check_writable(folder)  # what train_sinddm.py checks before its first step
    >>> find_checkpoint(folder, "latest") is None  # no checkpoint yet
    True
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

CHECKPOINT_PREFIX = "checkpoint-"
LOSS_LOG_NAME = "loss_log.json"
TRAINING_STATE_NAME = "training_state.safetensors"
COMPLETE_NAME = "checkpoint_complete.json"
LEGACY_PICKLE_PATTERN = "custom_checkpoint_*.pkl"
"""What accelerate's ``register_for_checkpointing`` writes and reads back with ``weights_only=False``: never loaded."""
STAGING_PREFIX = ".pipeline-"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# What a previous run leaves in its output folder besides the pipeline; --overwrite removes it.
_RUN_LEFTOVERS = (f"{CHECKPOINT_PREFIX}*", LOSS_LOG_NAME, LOSS_LOG_NAME + ".tmp", "loss_curve.png", "validation")

logger = logging.getLogger(__name__)


class GeneratorState:
    """A torch.Generator that accelerate can save and restore with the rest of the training state."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


class StepSeededGenerator:
    """A torch.Generator re-seeded at every step from (seed, step, process index).

    accelerate writes registered objects from the main process only, so a generator state saved with the checkpoint
    would give every process the main process's noise after a resume. Seeding from the step instead needs no saved
    state: a resumed run draws exactly the noise an uninterrupted one draws, on any number of processes.
    ``state_dict``/``load_state_dict`` exist so that the checkpoint layout (one custom object per registered
    generator) stays the same.
    """

    def __init__(self, seed: int, process_index: int = 0, device: torch.device | str = "cpu"):
        self.seed, self.process_index = seed, process_index
        self.generator = torch.Generator(device)

    def at_step(self, step: int) -> torch.Generator:
        """The generator, seeded for ``step`` of this process."""
        digest = hashlib.sha256(f"{self.seed}/{step}/{self.process_index}".encode()).digest()
        return self.generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def state_dict(self) -> dict:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore: the stream depends on the step only."""


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints (step, path), oldest first; unfinished `.tmp` folders are ignored."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_NAME.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    return sorted(found)


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed (None: it can): written by an older version with
    pickled state, not completed (killed while writing), or a file missing or unreadable."""
    if glob.glob(os.path.join(glob.escape(path), LEGACY_PICKLE_PATTERN)):
        return (
            "it holds pickled training state (custom_checkpoint_*.pkl, from an older version), which is never loaded "
            "since a pickle can run code"
        )
    if not os.path.isfile(os.path.join(path, COMPLETE_NAME)):
        return f"it was not completed (no {COMPLETE_NAME}: the run was stopped while writing it)"
    for name in (TRAINING_STATE_NAME, "model.safetensors"):
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            return f"{name} is missing"
        try:
            with safe_open(file, framework="pt") as handle:
                handle.keys()
        except Exception as error:  # any unreadable header: truncated, overwritten, not safetensors
            return f"{name} is unreadable ({' '.join(str(error).split())[:120]})"
    return None


def find_checkpoint(output_dir: str, which: str) -> str | None:
    """The folder of ``which``: "latest" (the highest step that can be resumed, skipping newer broken ones with a
    warning; None when there is none), or an explicit path (a ValueError saying why when it cannot be resumed)."""
    if which == "latest":
        for _, path in reversed(list_checkpoints(output_dir)):
            problem = checkpoint_problem(path)
            if problem is None:
                return path
            logger.warning(f"Skipping {path}: {problem}.")
        return None
    path = which if os.path.isdir(which) else os.path.join(output_dir, which)
    if not os.path.isdir(path) or not _CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(path))):
        raise ValueError(f"--resume_from_checkpoint {which!r}: no such checkpoint folder (checkpoint-<step>).")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f"--resume_from_checkpoint {which!r} cannot be resumed: {problem}.")
    return path


def pyramid_digest(images) -> str:
    """A SHA-256 of a training pyramid (every scale's size and pixels): a resume must train on the same one."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.size}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def write_training_state(folder: str, ema_model: torch.nn.Module, scale_generator: torch.Generator,
                         pyramid_sha256: str) -> None:
    """``folder/training_state.safetensors``: the EMA weights, the scale generator's state and the pyramid's
    digest (no pickle)."""
    tensors = {f"ema.{name}": value.detach().to("cpu").contiguous() for name, value in ema_model.state_dict().items()}
    tensors["scale_generator"] = scale_generator.get_state()
    save_file(tensors, os.path.join(folder, TRAINING_STATE_NAME), metadata={"pyramid_sha256": pyramid_sha256})


def read_training_state(folder: str, ema_model: torch.nn.Module, scale_generator: torch.Generator,
                        pyramid_sha256: str) -> None:
    """Restore what `write_training_state` saved, after checking that the checkpoint trained on this pyramid."""
    path = os.path.join(folder, TRAINING_STATE_NAME)
    with safe_open(path, framework="pt") as handle:
        saved = (handle.metadata() or {}).get("pyramid_sha256")
    if saved != pyramid_sha256:
        raise ValueError(
            f"{folder} was trained on another image or pyramid (--image_path, --max_pixels, --scale_factor differ); "
            "resuming it on this one would mix two models. Give the run's own image and settings, or start a new "
            "run (another --output_dir, or --overwrite)."
        )
    tensors = load_file(path)
    ema_model.load_state_dict({name[4:]: value for name, value in tensors.items() if name.startswith("ema.")})
    scale_generator.set_state(tensors["scale_generator"])


def check_writable(folder: str) -> None:
    """Refuse an output folder this process cannot write to, before any training step."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(
            f"--output_dir {folder!r} is not writable ({error.strerror or error}): nothing was trained. Choose a "
            "folder you can write to."
        ) from error


def save_pipeline_atomically(pipeline, output_dir: str) -> None:
    """``pipeline.save_pretrained`` (safetensors) into a staging folder, then every file moved into ``output_dir``
    with an atomic rename, ``model_index.json`` last: a kill at any moment leaves each file whole (the previous
    save's or this one's), never a half-written config or weights file."""
    for leftover in glob.glob(os.path.join(glob.escape(output_dir), STAGING_PREFIX + "*")):
        shutil.rmtree(leftover, ignore_errors=True)  # from a run killed while saving
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir)
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        files = sorted(
            os.path.relpath(os.path.join(root, name), staging) for root, _, names in os.walk(staging) for name in names
        )
        files.sort(key=lambda name: name == "model_index.json")
        for name in files:
            target = os.path.join(output_dir, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def checkpoint_step(path: str) -> int:
    """The step of a `checkpoint-<step>` folder."""
    match = _CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(path)))
    if not match:
        raise ValueError(f"{path!r} is not a checkpoint folder (checkpoint-<step>).")
    return int(match.group(1))


def save_checkpoint_atomically(
    accelerator,
    output_dir: str,
    step: int,
    losses: list[tuple[int, float]] | None = None,
    write_state=None,
) -> str:
    """`accelerator.save_state` (then ``write_state(folder)``, the loss log and the completion marker, last) into a
    temporary folder, renamed to `checkpoint-<step>` once complete.

    A kill while writing leaves only a `.tmp` folder, which `latest` never picks.
    """
    final = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{step}")
    temporary = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(temporary):
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if write_state is not None:
            write_state(temporary)
        if losses is not None:
            write_loss_log(temporary, losses)
        with open(os.path.join(temporary, COMPLETE_NAME), "w") as f:
            json.dump({"step": step}, f)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(temporary, final)
    accelerator.wait_for_everyone()
    return final


def prune_checkpoints(output_dir: str, keep: int) -> None:
    """Delete the oldest checkpoints so that at most ``keep`` remain."""
    checkpoints = list_checkpoints(output_dir)
    for _, path in checkpoints[: max(0, len(checkpoints) - keep)]:
        shutil.rmtree(path)


def holds_model(output_dir: str) -> bool:
    """Whether ``output_dir`` holds a saved pipeline or a complete checkpoint."""
    return os.path.exists(os.path.join(output_dir, "model_index.json")) or bool(list_checkpoints(output_dir))


def check_output_dir(output_dir: str, overwrite: bool, resuming: bool) -> None:
    """Refuse to train into a folder that already holds a model, unless resuming it or asked to overwrite."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir {output_dir!r} is a file; give a folder.")
    if overwrite or resuming or not os.path.isdir(output_dir):
        return
    if holds_model(output_dir):
        raise ValueError(
            f"--output_dir {output_dir!r} already holds a model. Choose another folder, pass "
            "--resume_from_checkpoint latest to continue its training, or --overwrite to replace it."
        )


def clear_previous_run(output_dir: str) -> list[str]:
    """Remove what an earlier run left in ``output_dir`` (checkpoints, loss log and curve, validation grids), so
    that an overwriting run never resumes from or prunes the old run's checkpoints. Returns the removed names."""
    removed = []
    for pattern in _RUN_LEFTOVERS:
        for path in sorted(glob.glob(os.path.join(glob.escape(output_dir), pattern))):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(os.path.basename(path))
    if removed:
        logger.info(f"--overwrite: removed {', '.join(removed)} from {output_dir}")
    return removed


def read_loss_log(folder: str, up_to_step: int | None = None) -> list[tuple[int, float]]:
    """The (step, loss) pairs of ``folder/loss_log.json`` (steps <= ``up_to_step`` if given); [] if absent."""
    path = os.path.join(folder, LOSS_LOG_NAME)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        losses = [(int(step), float(value)) for step, value in json.load(f)]
    return [item for item in losses if up_to_step is None or item[0] <= up_to_step]


def write_loss_log(folder: str, losses: list[tuple[int, float]]) -> None:
    """Write ``folder/loss_log.json`` atomically (a temporary file renamed)."""
    path = os.path.join(folder, LOSS_LOG_NAME)
    with open(path + ".tmp", "w") as f:
        json.dump(losses, f)
    os.replace(path + ".tmp", path)


def resumed_loss_log(checkpoint: str, output_dir: str) -> list[tuple[int, float]]:
    """The loss log of a run resumed from ``checkpoint``: the checkpoint's own copy, or (checkpoints written
    before it held one) the output folder's log cut at the checkpoint's step."""
    if os.path.exists(os.path.join(checkpoint, LOSS_LOG_NAME)):
        return read_loss_log(checkpoint)
    return read_loss_log(output_dir, up_to_step=checkpoint_step(checkpoint))
