"""`python -m sinddm_pipeline.generate`: writes samples and a grid, never over existing files."""

import pytest
from PIL import Image

from sinddm_pipeline.generate import main


def test_writes_numbered_samples_and_a_grid_without_overwriting(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    args = ["--model", str(tmp_path / "model"), "--output_dir", str(out), "--num_images", "3", "--batch_size", "2"]
    first = main([*args, "--grid", str(tmp_path / "grid.png")])
    second = main(args)
    assert [p.rsplit("/", 1)[1] for p in first[:3]] == ["sample_0000.png", "sample_0001.png", "sample_0002.png"]
    assert [p.rsplit("/", 1)[1] for p in second] == ["sample_0003.png", "sample_0004.png", "sample_0005.png"]
    height, width = tiny_pipe.scheduler.config.scale_sizes[-1]
    assert Image.open(first[0]).size == (width, height)
    assert Image.open(tmp_path / "grid.png").width > 3 * width
    with pytest.raises(FileExistsError, match="grid"):
        main([*args, "--grid", str(tmp_path / "grid.png")])


def test_retargeting_arguments_reach_the_pipeline(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "model")
    (path,) = main(
        [
            "--model",
            str(tmp_path / "model"),
            "--output_dir",
            str(tmp_path),
            "--num_images",
            "1",
            "--height",
            "50",
            "--width",
            "130",
        ]
    )
    assert Image.open(path).size == (130, 50)


def test_fast_sampling_options_give_the_pipeline_result(tiny_pipe, tmp_path):
    import numpy as np
    import torch

    from sinddm_pipeline import SinDDMPipeline, SinDDMScheduler

    tiny_pipe.save_pretrained(tmp_path / "model")
    args = ["--model", str(tmp_path / "model"), "--num_images", "1", "--seed", "4"]
    fast = ["--dtype", "bf16", "--channels_last", "--solver_order", "2", "--num_inference_steps", "4", "3"]
    (path,) = main([*args, "--output_dir", str(tmp_path / "fast"), *fast])
    pipe = SinDDMPipeline.from_pretrained(tmp_path / "model", dtype=torch.bfloat16)
    pipe.denoiser.to(memory_format=torch.channels_last)
    pipe.scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=2)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(generator=torch.Generator().manual_seed(4), num_inference_steps=[4, 3]).images[0]
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(expected))
    with pytest.raises(ValueError, match="num_inference_steps"):
        main([*args, "--output_dir", str(tmp_path / "bad"), "--num_inference_steps", "4", "3", "3"])
    assert not (tmp_path / "bad").exists()  # refused before sampling or writing anything


def test_samples_from_an_image_without_training(tmp_path):
    from conftest import synthetic_image

    synthetic_image(96, 72, seed=6).save(tmp_path / "image.png")
    out = tmp_path / "out"
    args = ["--image", str(tmp_path / "image.png"), "--output_dir", str(out), "--num_images", "2"]
    paths = main([*args, "--num_inference_steps", "3", "2"])
    assert [Image.open(path).size for path in paths] == [(96, 72)] * 2
    with pytest.raises(SystemExit):
        main(["--image", str(tmp_path / "image.png"), "--model", "x"])  # one source only
    with pytest.raises(FileNotFoundError):
        main(["--image", str(tmp_path / "missing.png"), "--output_dir", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()  # nothing written
