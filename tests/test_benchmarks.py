"""The benchmarks run in quick mode (what CI runs) and print their tables."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("benchmark_sampling.py", "images/s"),
        ("benchmark_training.py", "ms/step"),
        ("benchmark_fast_sampling.py", "speed-up"),
    ],
)
def test_benchmark_quick_mode_prints_a_table(script, expected):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout and "device: CPU" in result.stdout and "torch " in result.stdout
