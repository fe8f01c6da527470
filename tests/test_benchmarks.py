"""The benchmarks run in quick mode (what CI runs) and print their tables; the fast-path matrices too, and CUDA-only
options are skipped with a reason on a machine without CUDA."""

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallbacks of CUDA-only options")


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def table_rows(stdout: str) -> list[list[str]]:
    """The cells of every body row of the printed Markdown table."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("benchmark_sampling.py", "images/s"),
        ("benchmark_training.py", "ms/step"),
        ("benchmark_fast_sampling.py", "speed-up"),
    ],
)
def test_benchmark_quick_mode_prints_a_table(script, expected):
    result = run_benchmark(script, "--quick")
    assert expected in result.stdout and "device: CPU" in result.stdout and "torch " in result.stdout


@needs_no_cuda
def test_training_matrix_quick_mode():
    result = run_benchmark("benchmark_training.py", "--matrix", "--quick", "--threads", "1", "--device", "cpu")
    out = result.stdout
    assert "| variant" in out and "mean ms/step" in out and "speed-up" in out and "loss rel. diff" in out
    rows = {row[0]: row for row in table_rows(out)}
    assert rows["exact (fp32)"][3] == "1.00x" and rows["exact (fp32)"][-1] == "reference"
    for label in ("+channels_last", "+bf16 autocast", "+fused Adam"):
        assert float(rows[label][-1]) < 1e-2, rows[label]  # the loss on the fixed batch barely moves
    assert rows["+cudnn.benchmark, TF32"][1] == "skipped"
    assert "skipped --cudnn_benchmark, --allow_tf32: CUDA only" in out
    assert "device: CPU" in out and "UTC" in out


@needs_no_cuda
def test_sampling_matrix_quick_mode():
    args = ["--matrix", "exact", "bf16", "cuda_graphs", "strided", "strided_2m", "--num_inference_steps", "5"]
    result = run_benchmark("benchmark_sampling.py", *args, "--quick", "--threads", "1", "--device", "cpu")
    out = result.stdout
    assert "| variant" in out and "batch 1 s" in out and "images/s" in out and "max abs diff, batch 1" in out
    rows = table_rows(out)
    assert [row[0].split(":")[0] for row in rows] == ["exact (fp32)", "bf16", "cuda_graphs", "strided", "strided_2m"]
    exact, bf16, graphs, strided, strided_2m = rows
    assert strided_2m[1] == strided[1] and "2nd-order solver" in strided_2m[0]
    assert exact[-1] == "reference" and exact[5] == "1.00x"
    assert 0 < float(bf16[-1]) < 0.1  # bf16 noise estimates, fp32 samples: close to the exact path
    assert graphs[1] == "skipped" and "cuda_graphs: skipped --cuda_graphs: CUDA only" in out
    assert strided[-1] == "n/a (fewer steps)" and int(strided[1]) < int(exact[1])
    assert "strided: ran without CUDA graphs" in out


@needs_no_cuda
@pytest.mark.parametrize(
    ("script", "options", "reason"),
    [
        (
            "benchmark_training.py",
            ["--cudnn_benchmark", "--allow_tf32", "--mixed_precision", "bf16"],
            "skipped --cudnn_benchmark, --allow_tf32",
        ),
        ("benchmark_sampling.py", ["--cuda_graphs", "--batch_sizes", "1"], "skipped --cuda_graphs"),
    ],
)
def test_cuda_only_options_are_skipped_with_a_reason_on_cpu(script, options, reason):
    result = run_benchmark(script, "--quick", "--threads", "1", "--device", "cpu", *options)
    assert f"{reason}: CUDA only (this run is on cpu)" in result.stdout


@pytest.mark.parametrize(
    ("module", "option"), [("benchmark_training", "--bf16"), ("benchmark_sampling", "--channels_last")]
)
def test_matrix_refuses_per_run_fast_path_options(module, option, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    benchmark = importlib.import_module(module)
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args(["--matrix", option])
    assert exit_info.value.code == 2 and "--matrix sets the fast paths of each row itself" in capsys.readouterr().err


def test_old_training_benchmark_flags_still_work_and_warn(monkeypatch):
    """--tf32 and --bf16 are deprecated spellings of --allow_tf32 and --mixed_precision bf16 (autocast)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    benchmark = importlib.import_module("benchmark_training")
    with pytest.warns(FutureWarning) as caught:
        old = benchmark.parse_args(["--tf32", "--bf16"])
    messages = [str(warning.message) for warning in caught]
    assert "--tf32 is deprecated and will be removed: use --allow_tf32." in messages
    assert "--bf16 is deprecated and will be removed: use --mixed_precision bf16." in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spellings do not warn
        new = benchmark.parse_args(["--allow_tf32", "--mixed_precision", "bf16"])
    assert old.settings == new.settings and new.settings.allow_tf32 and new.settings.bf16
    assert benchmark.parse_args([]).settings == benchmark.Settings()


def test_fast_sampling_rows_and_noise_floor():
    result = run_benchmark("benchmark_fast_sampling.py", "--quick", "--noise_floor", "--threads", "1")
    rows = {row[0]: row for row in table_rows(result.stdout)}
    assert list(rows) == ["exact", "exact, seed + 1", "fast", "10", "cl:10", "cl+2m:10"]
    assert "fast: fast sampling: " in result.stdout and "probe per denoiser call: fp32 " in result.stdout
    assert int(rows["fast"][1]) == 10 + 6 + 5 + 4 + 3  # the shipped model's 5 scales, strided
    assert float(rows["fast"][3].rstrip("x")) > 5  # over the exact path's 263 steps
    assert rows["exact"][-2:] == ["-", "-"] and rows["exact, seed + 1"][-2] in ("ok", "outside")
    assert rows["exact, seed + 1"][-1] in ("ok", "worse")
    assert rows["exact"][1] == rows["exact, seed + 1"][1] and int(rows["10"][1]) < int(rows["exact"][1])
    assert rows["cl+2m:10"][1] == rows["cl:10"][1]  # the solver changes no step count
    assert rows["cl+2m:10"][4:6] != rows["cl:10"][4:6]  # ... but the samples


def test_training_free_benchmark_quick_mode():
    result = run_benchmark("benchmark_training_free.py", "--quick", "--accuracy", "--megapixel", "--threads", "1")
    tables = result.stdout.split("\n## ")
    timing = {row[0]: row for row in table_rows(tables[1])}
    assert list(timing) == ["trained dim 8, exact", "from_image + 1st sample", "next sample", "batch 8, per sample",
                            "256x256 sample"]
    assert all(float(row[2]) > 0 for row in timing.values()) and timing["trained dim 8, exact"][3] == "1.00"
    assert "peak memory MB" in timing["256x256 sample"][4] and "CPU" in tables[1] and "UTC" in tables[1]
    accuracy = table_rows(tables[2])
    assert [row[2] for row in accuracy] == [accuracy[0][2], "0"]  # scale 1: its first and last step
    for row in accuracy:
        mean_search = float(row[3].split(" / ")[0])
        assert mean_search < 0.02, row  # the candidate search is close to the exact sum (measured ~5e-3)
