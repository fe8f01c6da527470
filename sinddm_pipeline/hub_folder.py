"""The folder pushed to the Hub for a SinDDM pipeline, its model card, and the upload (a pipeline object in hand).

[`prepare_hub_folder`] writes exactly what is pushed: the pipeline (safetensors and configs), ``README.md`` (the
model card, rendered from ``templates/sinddm_model_card.md`` (package data) with `huggingface_hub.ModelCard`), the
training image (``training_image.png``), a grid of samples (``samples.png``) and the code (``sinddm_pipeline.py``, see
[`~sinddm_pipeline.remote_code`]) so that vanilla diffusers loads it with ``trust_remote_code=True``.
[`push_to_hub`] prepares that folder in a temporary directory and uploads it. `SinDDMPipeline.push_to_hub` calls it;
[`sinddm_pipeline.hub`] adds folders (a `train_sinddm.py` output) on top, so this module never imports a pipeline.

Example:
    >>> from sinddm_pipeline.hub_folder import model_card
    >>> card = model_card("me/sinddm-balloons", {"image_path": "balloons.png", "max_train_steps": 120000})
    >>> card.data.library_name, card.data.pipeline_tag, card.data.tags
    ('diffusers', 'unconditional-image-generation', ['sinddm', 'single-image'])
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, ModelCard, ModelCardData

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "sinddm_model_card.md"
"""Package data: found after a plain (non-editable) install too."""
TRAINING_IMAGE_NAME = "training_image.png"
SAMPLES_NAME = "samples.png"
LOSS_CURVE_NAME = "loss_curve.png"
CARD_FILES = ("README.md", TRAINING_IMAGE_NAME, SAMPLES_NAME)
# Checkpoints (optimizer state, RNG, pickles), the raw loss log and temporary files stay local.
UPLOAD_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", "loss_log.json", "*.tmp"]
SECRET_ARGS = ("hub_token",)


def model_card(
    repo_id: str,
    training_args: dict | None = None,
    has_loss_curve: bool = False,
    num_samples: int = 4,
    seed: int = 0,
    license: str = "mit",
    template_path: str | os.PathLike = TEMPLATE_PATH,
    install_command: str | None = None,
) -> ModelCard:
    """The README.md of a SinDDM model: Hub metadata, training image, sample grid, usage, training arguments.

    Args:
        repo_id: the Hub repo the card describes (used in the usage snippets).
        training_args: the arguments of `train_sinddm.py` (``hub_token`` is never written), or ``None``.
        has_loss_curve: show ``loss_curve.png``.
        num_samples, seed: how ``samples.png`` was generated (``num_samples=0``: no sample grid).
        license: the license metadata.
        template_path: the Jinja template (``sinddm_pipeline/templates/sinddm_model_card.md``).
        install_command: how a reader installs ``sinddm_pipeline`` (not on PyPI), e.g.
            ``pip install "sinddm-pipeline @ git+https://github.com/you/sinddm"``; default: from a checkout.

    The metadata carries a ``widget`` entry with the sample grid, so the Hub shows it on the model page.

    Example:
        >>> card = model_card("me/sinddm-balloons", {"image_path": "balloons.png", "hub_token": "hf_x"})
        >>> "hf_x" in str(card), "training_image.png" in str(card), card.data.license
        (False, True, 'mit')
    """
    widget = None
    if num_samples:
        widget = [{"text": f"{num_samples} samples, seed {seed}", "output": {"url": SAMPLES_NAME}}]
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        tags=["sinddm", "single-image"],
        license=license,
        widget=widget,
    )
    arguments = None
    if training_args:
        safe = {key: value for key, value in training_args.items() if key not in SECRET_ARGS}
        arguments = json.dumps(safe, indent=2, default=str)
    image_path = (training_args or {}).get("image_path")
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        repo_id=repo_id,
        image_name=os.path.basename(str(image_path)) if image_path else None,
        training_image=TRAINING_IMAGE_NAME,
        samples_image=SAMPLES_NAME if num_samples else None,
        num_samples=num_samples,
        seed=seed,
        loss_curve=LOSS_CURVE_NAME if has_loss_curve else None,
        training_args=arguments,
        install_command=install_command,
    )


def _ignored(relative_path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(relative_path, pattern) for pattern in patterns)


def _copy_folder(source: Path, target: Path, ignore_patterns: list[str]) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_file() and not any(_ignored(part, ignore_patterns) for part in _prefixes(relative)):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def _prefixes(relative: str) -> list[str]:
    parts = relative.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def prepare_hub_folder(
    pipeline_or_folder: Any,
    out_dir: str | os.PathLike,
    training_args: dict | None = None,
    repo_id: str | None = None,
    num_grid_samples: int = 4,
    seed: int = 0,
    license: str = "mit",
    remote_code: bool = True,
    load: Callable[[Path], Any] | None = None,
) -> Path:
    """Write into ``out_dir`` (new or empty) exactly what `push_to_hub` uploads.

    Args:
        pipeline_or_folder: a `SinDDMPipeline`, or a folder holding one (e.g. a `train_sinddm.py` output: its other
            files come along, except checkpoints, ``loss_log.json`` and ``*.tmp``; its ``training_args.json`` fills
            ``training_args``).
        out_dir: the folder to write.
        training_args: the training arguments for the card (``hub_token`` is left out).
        repo_id: the repo named in the card's usage snippets (default: ``out_dir``'s name).
        num_grid_samples: images in ``samples.png`` (0: none).
        seed: the seed of the sample grid.
        license: the card's license.
        remote_code: ship ``sinddm_pipeline.py`` for vanilla diffusers (``trust_remote_code=True``).
        load: loads the pipeline of a folder (`sinddm_pipeline.hub` passes ``SinDDMPipeline.from_pretrained``).

    Returns:
        ``out_dir``.

    Example:
        >>> import tempfile
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.hub_folder import prepare_hub_folder
        >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")  # doctest: +SKIP
        >>> folder = prepare_hub_folder(pipe, tempfile.mkdtemp(), repo_id="me/sinddm-hubble")  # doctest: +SKIP
        >>> [(folder / name).is_file() for name in ("README.md", "samples.png", "sinddm_pipeline.py")]  # doctest: +SKIP
        [True, True, True]
    """
    from .plots import image_grid
    from .remote_code import add_remote_code

    folder_given = isinstance(pipeline_or_folder, (str, os.PathLike))
    if folder_given and load is None:
        raise ValueError(
            "prepare_hub_folder needs load= to read a folder (sinddm_pipeline.hub.prepare_hub_folder passes it)."
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty: prepare_hub_folder writes a new folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    if folder_given:
        source = Path(pipeline_or_folder)
        _copy_folder(source, out_dir, UPLOAD_IGNORE_PATTERNS + list(CARD_FILES))
        pipeline = load(out_dir)
        if training_args is None and (source / "training_args.json").is_file():
            training_args = json.loads((source / "training_args.json").read_text())
    else:
        pipeline = pipeline_or_folder
        pipeline.save_pretrained(out_dir)

    pyramid = pipeline.pyramid
    pyramid.pil(pyramid.num_scales - 1).save(out_dir / TRAINING_IMAGE_NAME)
    if num_grid_samples:
        previous = dict(getattr(pipeline, "_progress_bar_config", {}))
        pipeline.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(seed)
        try:
            images = pipeline(batch_size=num_grid_samples, generator=generator).images
        finally:
            pipeline._progress_bar_config = previous
        image_grid(images, columns=min(4, num_grid_samples)).save(out_dir / SAMPLES_NAME)
    card = model_card(
        repo_id or out_dir.name,
        training_args,
        has_loss_curve=(out_dir / LOSS_CURVE_NAME).is_file(),
        num_samples=num_grid_samples,
        seed=seed,
        license=license,
    )
    card.save(out_dir / "README.md")
    if remote_code:
        add_remote_code(out_dir)
    return out_dir


def push_to_hub(
    pipeline_or_folder: Any,
    repo_id: str,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    create_pr: bool = False,
    **folder_kwargs: Any,
):
    """Create (or reuse) the Hub repo ``repo_id`` and upload [`prepare_hub_folder`]'s folder to it.

    Args:
        pipeline_or_folder: a `SinDDMPipeline` or a folder holding one.
        repo_id: ``name`` or ``user/name``.
        commit_message: default "Upload SinDDM pipeline".
        private: make a new repo private (``None``: the account's default).
        token: the Hub token (default: the logged-in one).
        create_pr: open a pull request instead of committing to ``main``.
        folder_kwargs: for [`prepare_hub_folder`] (``training_args``, ``num_grid_samples``, ``seed``, ``license``,
            ``load``).

    Returns:
        The commit info of `HfApi.upload_folder` (a ``str``: the commit URL), as diffusers' ``push_to_hub``.

    Example:
        >>> from sinddm_pipeline import SinDDMPipeline
        >>> from sinddm_pipeline.hub_folder import push_to_hub
        >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")  # doctest: +SKIP
        >>> push_to_hub(pipe, "me/sinddm-hubble", private=True)  # doctest: +SKIP
    """
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare_hub_folder(pipeline_or_folder, Path(tmp) / "upload", repo_id=repo_id, **folder_kwargs)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or "Upload SinDDM pipeline",
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
            create_pr=create_pr,
        )
