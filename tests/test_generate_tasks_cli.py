"""`python -m sinddm_pipeline.generate --task ...`: every single-image task from the command line, on a tiny
training-free source (96x72, two scales) and 60x40 inputs with few steps."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_image, tiny_pipeline
from PIL import Image

from sinddm_pipeline import generate_tasks
from sinddm_pipeline.generate import cli, main

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["--num_inference_steps", "3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The source image (--image), a 60x40 input, a mask with a 20x16 hole and an empty (black) mask."""
    folder = tmp_path_factory.mktemp("inputs")
    synthetic_image(96, 72, seed=6).save(folder / "source.png")
    synthetic_image(60, 40, seed=1).save(folder / "input.png")
    mask = Image.new("L", (60, 40))
    mask.paste(255, (20, 12, 40, 28))
    mask.save(folder / "mask.png")
    Image.new("L", (60, 40)).save(folder / "empty.png")
    return {name: str(folder / f"{name}.png") for name in ("source", "input", "mask", "empty")}


def run(files, out, *args):
    return main(["--image", files["source"], "--output_dir", str(out), *STEPS, *args])


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_the_image_tasks_write_their_files(files, tmp_path):
    source, given = pixels(files["source"]), pixels(files["input"])
    paints = run(files, tmp_path, "--task", "paint", "--input", files["input"], "--num_images", "2",
                 "--batch_size", "1", "--grid", str(tmp_path / "grid.png"))  # fmt: skip
    assert [Path(p).name for p in paints] == ["paint_0000.png", "paint_0001.png", "grid.png"]
    assert Image.open(paints[0]).size == (102, 68)  # the painting's 3:2 with the source's 96x72 pixels
    assert Image.open(paints[2]).width == 2 * 102 + 3 * 2  # the grid of both, 2 px apart
    (sized,) = run(files, tmp_path, "--task", "paint", "--input", files["input"], "--width", "72", "--height", "48")
    assert Image.open(sized).size == (72, 48)

    masked = ["--input", files["input"], "--mask", files["mask"], "--feather_radius", "2"]
    for task in ("edit", "inpaint"):
        (path,) = run(files, tmp_path, "--task", task, *masked)
        assert Path(path).name == f"{task}_0000.png"
        out = pixels(path)
        assert out.shape == given.shape
        assert np.array_equal(out[:8], given[:8]) and not np.array_equal(out[12:28, 20:40], given[12:28, 20:40])

    (path,) = run(files, tmp_path, "--task", "outpaint", "--input", files["input"], "--left", "10", "--top", "6")
    assert Path(path).name == "outpaint_0000.png"
    assert Image.open(path).size == (70, 46) and np.array_equal(pixels(path)[6:, 10:], given)

    (path,) = run(files, tmp_path, "--task", "super_resolution", "--input", files["input"], "--upscale_factor", "1.5")
    assert Path(path).name == "super_resolution_0000.png" and Image.open(path).size == (90, 60)
    (path,) = run(files, tmp_path, "--task", "sample", "--tileable", "--num_images", "1")
    assert Path(path).name == "sample_0000.png" and pixels(path).shape == source.shape


def test_the_same_seed_gives_the_same_images_and_nothing_is_overwritten(files, tmp_path):
    args = ["--task", "inpaint", "--input", files["input"], "--mask", files["mask"], "--seed", "3"]
    first, second = run(files, tmp_path, *args), run(files, tmp_path, *args)
    (other,) = run(files, tmp_path, *args[:-1], "4")
    assert [Path(p).name for p in first + second + [other]] == [f"inpaint_000{i}.png" for i in range(3)]
    assert np.array_equal(pixels(first[0]), pixels(second[0]))
    assert not np.array_equal(pixels(first[0]), pixels(other))


def test_animate_writes_a_looping_gif(files, tmp_path):
    args = ["--task", "animate", "--num_frames", "3", "--fps", "5", "--height_scale", "0.75", "--seed", "2"]
    (first,), (second,) = run(files, tmp_path, *args), run(files, tmp_path, *args)
    assert [Path(first).name, Path(second).name] == ["animation_0000.gif", "animation_0001.gif"]
    with Image.open(first) as gif:
        assert (gif.n_frames, gif.size, gif.info["loop"], gif.info["duration"]) == (3, (96, 54), 0, 200)
    assert Path(first).read_bytes() == Path(second).read_bytes()  # the same seed: the same animation


def test_mp4_needs_imageio_ffmpeg(files, tmp_path, monkeypatch, capsys):
    args = ["--task", "animate", "--num_frames", "2", "--animation_format", "mp4"]
    if generate_tasks.mp4_available():
        (path,) = run(files, tmp_path, *args)
        assert Path(path).name == "animation_0000.mp4" and Path(path).stat().st_size > 0
    monkeypatch.setattr(generate_tasks, "mp4_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        run(files, tmp_path / "none", *args)
    assert exit_info.value.code == 2 and "pip install imageio-ffmpeg" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--input", "x.png"],
            "--input applies to --task paint, edit, inpaint, outpaint, super_resolution only, not --task sample",
        ),
        (["--task", "animate", "--input", "x.png"], "--input applies to"),
        (["--task", "paint", "--input", "x.png", "--mask", "m.png"], "--mask applies to --task edit, inpaint only"),
        (["--task", "paint", "--input", "x.png", "--top", "4"], "--top applies to --task outpaint only"),
        (["--task", "edit", "--input", "x", "--mask", "m", "--width", "50"], "--width applies to --task sample, paint"),
        (["--task", "inpaint", "--input", "x", "--mask", "m", "--upscale_factor", "2"], "--upscale_factor applies"),
        (["--task", "super_resolution", "--input", "x", "--num_frames", "4"], "--num_frames applies to --task animate"),
        (["--task", "animate", "--num_images", "2"], "--num_images applies to --task sample, paint"),
        (
            ["--task", "outpaint", "--input", "x", "--left", "4", "--tileable"],
            "--tileable applies to --task sample, super_resolution, animate only, not --task outpaint",
        ),
        (["--start_scale", "1"], "--start_scale applies to --task paint, edit only"),
        (["--task", "paint"], "--task paint needs --input FILE"),
        (["--task", "edit", "--input", "x.png"], "--task edit needs --mask FILE"),
        (["--task", "inpaint", "--mask", "m.png"], "--task inpaint needs --input FILE"),
        (["--task", "outpaint", "--input", "x.png"], "--task outpaint needs a margin"),
        (["--task", "outpaint", "--input", "x.png", "--left", "0"], "--task outpaint needs a margin"),
        (["--task", "animate", "--fps", "0"], "--fps must be in (0, 100]"),
        (["--task", "paint", "--input", "x.png", "--num_images", "0"], "--num_images and --batch_size must be >= 1"),
    ],
)
def test_options_the_task_does_not_take_are_refused(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--image", "never-read.png", "--output_dir", str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "outpaint", "--left", "100"], "error: left must be an int in [0, 60], got 100."),
        (
            ["--task", "outpaint", "--left", "-3", "--top", "4"],
            "error: left must be an int >= 0 (pixels of margin), got -3.",
        ),
        (["--task", "super_resolution", "--upscale_factor", "8"], "error: upscale_factor must be a number in"),
        (["--task", "edit", "--mask", "{empty}"], "error: mask_image: the mask is zero everywhere"),
        (["--task", "inpaint", "--mask", "{missing}"], "error: No image at"),
        (["--task", "paint", "--input", "{missing}"], "error: No image at"),
    ],
)
def test_pipeline_errors_exit_2_naming_the_argument(args, message, files, tmp_path, capsys):
    paths = {**files, "missing": str(tmp_path / "missing.png")}
    source = ["--image", files["source"], "--output_dir", str(tmp_path / "out"), "--input", files["input"]]
    assert cli([*source, *(arg.format(**paths) for arg in args)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_trained_model_runs_the_task_pipeline(files, tmp_path):
    from sinddm_pipeline import SinDDMScheduler, SinDDMSuperResolutionPipeline

    tiny_pipeline().save_pretrained(tmp_path / "model")
    args = ["--upscale_factor", "1.5", "--start_timestep", "3", "--tileable", "--solver_order", "2", "--seed", "5"]
    (path,) = main(["--model", str(tmp_path / "model"), "--task", "super_resolution", "--input", files["input"],
                    "--output_dir", str(tmp_path), *STEPS, *args])  # fmt: skip
    pipe = SinDDMSuperResolutionPipeline.from_pretrained(tmp_path / "model")
    pipe.scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=2)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(Image.open(files["input"]), upscale_factor=1.5, start_timestep=3, tileable=True,
                    num_inference_steps=3, generator=torch.Generator().manual_seed(5)).images[0]  # fmt: skip
    assert np.array_equal(pixels(path), np.asarray(expected))


def test_the_module_runs_as_a_script(files, tmp_path):
    command = [sys.executable, "-m", "sinddm_pipeline.generate", "--image", files["source"], "--task", "outpaint",
               "--input", files["input"], "--top", "500", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "error: top must be an int in [0, 40], got 500." in result.stderr
    assert not (tmp_path / "out").exists()
