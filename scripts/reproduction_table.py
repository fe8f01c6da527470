"""Print the markdown metric table of docs/REPRODUCTION.md from the evaluation JSON files it cites.

    python scripts/reproduction_table.py docs/reproduction/balloons_crop96.json docs/reproduction/balloons_whole.json

Each JSON file is the output of ``python -m sinddm_pipeline.evaluate ... --output_json FILE``; the table has one row
per file (mean ± std of every metric), so the report's numbers are copied by a program, never by hand
(tests/test_reproduction_report.py checks that the report still matches its JSON files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = {
    "pixel_diversity": "pixel diversity ↑",
    "lpips_diversity": "LPIPS diversity ↑",
    "sifid_vgg": "SIFID-VGG ↓",
    "patch_swd": "patch SWD ↓",
}
OPTIONAL_COLUMNS = {
    "colour_distance": "mean colour dist. ↓",
    "sharpness": "sharpness (1 = training image)",
}
"""Shown only when a row of the table has them (evaluations before these metrics existed do not)."""


def metric_cell(metric: dict | None) -> str:
    """'mean ± std' with 4 significant digits ('mean' alone for set-level metrics), '-' when not measured."""
    if metric is None:
        return "-"
    mean = f"{metric['mean']:.4g}"
    return mean if metric.get("std") is None else f"{mean} ± {metric['std']:.2g}"


def table(paths: list[Path]) -> str:
    """One markdown row per evaluation file: its name, sample count, size and the metrics."""
    reports = [json.loads(path.read_text()) for path in paths]
    columns = dict(COLUMNS)
    columns.update({k: v for k, v in OPTIONAL_COLUMNS.items() if any(k in r["metrics"] for r in reports)})
    header = ["run", "samples", "size", *columns.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for path, report in zip(paths, reports, strict=True):
        size = report["sample_size"]
        cells = [path.stem, str(report["num_samples"]), f"{size['width']}x{size['height']}"]
        cells += [metric_cell(report["metrics"].get(name)) for name in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="evaluation JSON files, one row each")
    text = table(parser.parse_args(argv).reports)
    print(text)
    return text


if __name__ == "__main__":
    main()
