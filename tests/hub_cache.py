"""Writing a Hugging Face hub cache in the official layout, so `from_pretrained("user/repo")` works offline."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def write_hub_cache(folder: Path, cache_dir: Path, repo_id: str, revision: str = "main") -> Path:
    """Put ``folder`` into ``cache_dir`` as the snapshot of model repo ``repo_id`` (blobs, snapshots, refs).

    Returns the snapshot folder. Layout: models--{user}--{name}/blobs/<sha256>,
    snapshots/<commit>/<path> -> ../../blobs/<sha256> (relative symlinks), refs/<revision> holding <commit>.
    """
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    commit = hashlib.sha1(b"".join(str(p.relative_to(folder)).encode() for p in files)).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        data = path.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return snapshot
