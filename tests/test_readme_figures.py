"""The README's GPU speed figures are copied from benchmarks/RESULTS.md (which records each with its command, date
and card), so a figure edited in one place and not the other fails here."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"\d+(?:\.\d+)?(?: ms| s|x)")
ROWS = ("| training step, batch 32 |", "| one sample, batch 1 |", "| 16 samples, batch 16 |")


def readme_speed_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return [line for line in readme.splitlines() if line.startswith(ROWS)]


def test_the_readme_names_the_gpu_of_its_figures():
    readme = (ROOT / "README.md").read_text()
    assert len(readme_speed_rows()) == len(ROWS)
    assert "NVIDIA H200" in readme and "NVIDIA H200" in (ROOT / "benchmarks" / "RESULTS.md").read_text()


def test_every_readme_speed_figure_is_in_the_results():
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    numbers = set(re.findall(r"\d+\.\d+|\d+", results))
    for row in readme_speed_rows():
        official = row.rsplit("|", 2)[1]  # the official code's column comes from ANCHORS, not from our benchmarks
        for figure in FIGURE.findall(row[: len(row) - len(official) - 2]):
            assert figure.rstrip("msx ").strip() in numbers, f"{figure!r} of {row!r} is not in RESULTS.md"
