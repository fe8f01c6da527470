"""The app's files in its temporary folder (`settings.WORK_DIR`): zips of outputs and of trained models, and pruning
of old ones (`settings.KEEP_HOURS`) so that a long-running Space does not fill its disk."""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from PIL import Image

from . import models, settings


def prune_work_dir(now: float | None = None) -> list[str]:
    """Delete the zips and trained models in the app's temporary folder older than KEEP_HOURS (never one set with
    SINDDM_APP_DIR, nor the example cache); trained models leave the model list. Returns the deleted names."""
    work_dir = settings.WORK_DIR
    if not settings.PRUNE_WORK_DIR or not work_dir.is_dir():
        return []
    oldest = (now if now is not None else time.time()) - settings.KEEP_HOURS * 3600
    deleted = []
    for entry in work_dir.iterdir():
        if entry.name == "cached_examples" or not entry.is_dir() or entry.stat().st_mtime >= oldest:
            continue
        for name, folder in list(models._trained.items()):
            if Path(folder).is_relative_to(entry):
                del models._trained[name]
        shutil.rmtree(entry, ignore_errors=True)
        deleted.append(entry.name)
    return deleted


def new_folder(prefix: str) -> Path:
    """A new folder in the app's temporary folder (after pruning the old ones)."""
    prune_work_dir()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=settings.WORK_DIR))


def zip_images(images: list[Image.Image], stem: str) -> str:
    """The images as PNGs in a new zip file; returns its path (for a gr.File download)."""
    folder = new_folder(f"{stem}_")
    path = folder / f"{stem}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index, image in enumerate(images):
            image_path = folder / f"{stem}_{index:02d}.png"
            image.save(image_path)
            archive.write(image_path, image_path.name)
    return str(path)


def zip_model(folder: Path) -> str:
    """The pipeline folder (without checkpoints) as a zip next to it; returns the zip's path."""
    path = folder.with_suffix(".zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            relative = file.relative_to(folder)
            if file.is_file() and not relative.parts[0].startswith("checkpoint-"):
                archive.write(file, Path(folder.name) / relative)
    return str(path)
