"""The README's "Single-image tasks" examples run as written, on the shipped model, and give what their comments say;
its pictures exist and `scripts/render_task_examples.py` refuses to write over them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Single-image tasks"


def task_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    return readme[start : readme.index("\n## ", start + len(SECTION))]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="module")
def namespace(tmp_path_factory) -> dict:
    """Every Python block of the section run in order, in one namespace, in a folder that has the shipped model."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "models").symlink_to(ROOT / "models", target_is_directory=True)
    names: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for block in python_blocks(task_section()):
            exec(compile(block, "README.md", "exec"), names)  # noqa: S102 - the README's own examples
    names["folder"] = folder
    return names


def test_the_section_has_a_python_example_for_every_task():
    blocks = "\n".join(python_blocks(task_section()))
    for call in (
        "SinDDMPaintPipeline",
        "mask_image=mask",
        "mask_image=hole",
        "left=120",
        "SinDDMSuperResolutionPipeline",
        "export_animation",
        "tileable=True",
    ):
        assert call in blocks, call
    for picture in re.findall(r"\]\((docs/tasks/[^)]+)\)", task_section()):
        assert (ROOT / picture).is_file(), picture


def test_the_examples_give_the_sizes_their_comments_say(namespace):
    training = namespace["training_image"]
    assert training.size == (239, 208)
    assert namespace["realistic"].size[0] / namespace["realistic"].size[1] == pytest.approx(160 / 100, rel=0.02)
    assert namespace["filled"].size == training.size and namespace["blended"].size == training.size
    assert namespace["wider"].size == (479, 208)
    assert namespace["sharp"].size == (400, 320)
    assert namespace["tile"].size == training.size


def test_the_examples_keep_what_they_say_they_keep(namespace):
    training = np.asarray(namespace["training_image"], dtype=np.int16)
    wider = np.asarray(namespace["wider"], dtype=np.int16)
    assert np.array_equal(wider[:, 120:359], training)  # the outpainted image's original block
    filled = np.asarray(namespace["filled"], dtype=np.int16)
    far = np.ones(training.shape[:2], dtype=bool)
    far[50 - 9 : 150 + 9, 70 - 9 : 170 + 9] = False  # the hole, dilated by feather_radius (8) + 1
    assert np.abs(filled - training)[far].max() == 0
    assert np.abs(filled - training)[60:140, 80:160].mean() > 5  # the hole itself is new


def test_the_animation_example_writes_a_looping_gif(namespace):
    with Image.open(namespace["folder"] / "loop.gif") as gif:
        assert gif.n_frames == 8 and gif.info["loop"] == 0 and gif.size == (239, 208)


def test_the_render_script_keeps_existing_pictures(tmp_path):
    (tmp_path / "paint.png").write_bytes(b"mine")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_task_examples.py"), "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (tmp_path / "paint.png").read_bytes() == b"mine"


def test_the_command_lines_name_options_the_cli_takes_and_files_the_project_ships():
    from sinddm_pipeline.generate import parse_args

    blocks = re.findall(r"```bash\n(.*?)```", task_section(), flags=re.DOTALL)
    lines = [line.split() for block in blocks for line in block.splitlines() if "sinddm_pipeline.generate" in line]
    assert {line[line.index("--task") + 1] for line in lines if "--task" in line} == {
        "paint", "edit", "inpaint", "outpaint", "super_resolution", "animate"
    }  # fmt: skip
    for line in lines:
        args = parse_args(line[3:])  # "python -m sinddm_pipeline.generate ..."; refuses options the task does not take
        for path in (args.model, getattr(args, "input", None), getattr(args, "mask", None)):
            assert path is None or (ROOT / path).exists(), path
