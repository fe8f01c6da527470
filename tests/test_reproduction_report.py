"""docs/REPRODUCTION.md: each metric table is what scripts/reproduction_table.py prints from its JSON files."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "REPRODUCTION.md"
TABLE_BLOCK = re.compile(r"<!-- table: (?P<files>[^>]*?) -->\n(?P<table>.*?)\n<!-- end table -->", re.DOTALL)


def _load_table_script():
    spec = importlib.util.spec_from_file_location("reproduction_table", ROOT / "scripts" / "reproduction_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduction_table = _load_table_script()


def test_report_tables_match_their_evaluation_files():
    blocks = list(TABLE_BLOCK.finditer(REPORT.read_text(encoding="utf-8")))
    assert blocks, "docs/REPRODUCTION.md has no generated table"
    for block in blocks:
        paths = [ROOT / name for name in block["files"].split()]
        for path in paths:
            assert path.is_file(), f"{path} is cited by docs/REPRODUCTION.md but missing"
        assert block["table"] == reproduction_table.table(paths), (
            f"the table for {block['files']} differs from its JSON files: "
            f"regenerate it with python scripts/reproduction_table.py {block['files']}"
        )


def test_every_cited_evaluation_names_its_command_inputs():
    cited = {
        name for block in TABLE_BLOCK.finditer(REPORT.read_text(encoding="utf-8")) for name in block["files"].split()
    }
    for name in cited:
        report = json.loads((ROOT / name).read_text())
        assert report["num_samples"] >= 16 and report["seed"] is not None
        assert {"sifid_vgg", "patch_swd", "pixel_diversity"} <= set(report["metrics"]), name


def test_table_cells(tmp_path):
    report = {
        "num_samples": 3,
        "sample_size": {"width": 8, "height": 6},
        "metrics": {"pixel_diversity": {"mean": 0.123456, "std": None}, "patch_swd": {"mean": 0.5, "std": 0.01234}},
    }
    (tmp_path / "run.json").write_text(json.dumps(report))
    lines = reproduction_table.table([tmp_path / "run.json"]).splitlines()
    assert lines[2] == "| run | 3 | 8x6 | 0.1235 | - | - | 0.5 ± 0.012 |"
    with pytest.raises(FileNotFoundError):
        reproduction_table.table([tmp_path / "missing.json"])


def test_optional_columns_appear_only_when_a_row_has_them(tmp_path):
    base = {"num_samples": 3, "sample_size": {"width": 8, "height": 6}, "metrics": {"patch_swd": {"mean": 0.5}}}
    (tmp_path / "old.json").write_text(json.dumps(base))
    assert "sharpness" not in reproduction_table.table([tmp_path / "old.json"])
    new = {**base, "metrics": {**base["metrics"], "sharpness": {"mean": 0.75, "std": 0.05}}}
    (tmp_path / "new.json").write_text(json.dumps(new))
    lines = reproduction_table.table([tmp_path / "old.json", tmp_path / "new.json"]).splitlines()
    assert "sharpness" in lines[0] and "colour" not in lines[0]
    assert lines[2].endswith("| 0.5 | - |") and lines[3].endswith("| 0.5 | 0.75 ± 0.05 |")
