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
