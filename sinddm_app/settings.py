"""The app's settings, in one place: every module reads them from here when it runs (``settings.BF16``), so that
`app.py`'s flags and the tests set them here (``settings.ALLOW_FOLDERS = True``).

Environment variables: SINDDM_APP_ALLOW_FOLDERS, SINDDM_APP_BF16, SINDDM_APP_DIR, SINDDM_APP_KEEP_HOURS (see below).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import torch


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1 / true / yes."""
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes")


ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
EXAMPLES_DIR = ROOT / "examples" / "app"
DEFAULT_MODEL = "hubble-sinddm"
MAX_MODEL_NAME = 256
"""Model names (a folder, a Hub repo id) longer than this are refused with a message."""
ALLOW_FOLDERS = env_flag("SINDDM_APP_ALLOW_FOLDERS")
"""Whether the model box also opens pipeline folders of this machine (``--allow_folders`` /
SINDDM_APP_ALLOW_FOLDERS=1, for a local app); off: shipped and trained models, uploaded images and Hub repo ids only,
so that a deployed app never reads its server's disk on a visitor's request."""
MCP_SERVER = importlib.util.find_spec("mcp") is not None
"""Every task (it has an api_name) is also an MCP tool when Gradio's MCP extra is installed (``gradio[mcp]``, as the
Space's requirements do)."""
KEEP_HOURS = float(os.environ.get("SINDDM_APP_KEEP_HOURS", "24"))
"""Files in the app's default temporary folder (zips, trained models) older than this are deleted, as Gradio's own
cache (``delete_cache``): a long-running Space does not fill its disk. A folder set with SINDDM_APP_DIR is never
pruned."""
MAX_BATCH = 8
MAX_UPLOAD_PIXELS = 4096 * 4096
"""Uploads larger than this are refused; smaller ones over the 50,000 px budget are resized down with a note."""
MAX_OUTPUT_SIDE = 1024
MAX_TRAIN_STEPS = 20_000
MAX_IMAGE_PIPELINES = 8
"""Training-free pipelines of uploaded images kept (the oldest goes first)."""
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BF16 = env_flag("SINDDM_APP_BF16")
"""Load denoisers in bfloat16 + channels_last (``--dtype bf16`` / SINDDM_APP_BF16=1); off: the exact fp32 path."""
WORK_DIR = Path(os.environ.get("SINDDM_APP_DIR") or tempfile.mkdtemp(prefix="sinddm_app_"))
"""Where the app writes zips, trained models and temporary images (a fresh temporary folder by default)."""
PRUNE_WORK_DIR = not os.environ.get("SINDDM_APP_DIR")
"""Whether old files in WORK_DIR are deleted (`sinddm_app.files.prune_work_dir`): not in a folder the user chose."""

# Gradio caches examples under ./.gradio by default: keep them out of the checkout, with the app's other files
os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(WORK_DIR / "cached_examples"))
