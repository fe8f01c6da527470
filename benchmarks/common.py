"""Shared helpers of the benchmarks: the machine description, timing, table printing and the fast-path switches
(backend flags, memory format, torch.compile) that the training and sampling matrices share."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
# The checkout's package, also where it is not installed (a GPU machine gets a bare copy of the working tree).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sinddm_pipeline.pyramid import Pyramid, build_pyramid  # noqa: E402

SHARED_BALLOONS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "images", "balloons.png")
# A copy inside the checkout (untracked, not ignored) travels to a GPU machine; ../shared does not.
LOCAL_BALLOONS = str(REPO_ROOT / "shared" / "images" / "balloons.png")


def cpu_kind() -> str:
    """The CPU's model name and its vector extensions that decide the fast paths (AVX2 / AVX-512 / bf16 / AMX), as
    `lscpu | grep -E "Model name|avx512|amx"` would show them."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return model
    kinds = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if name in flags]
    return f"{model} ({', '.join(kinds) or 'no AVX2'})"


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return f"CPU {cpu_kind()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def balloons_pyramid(max_pixels: int = 50_000) -> tuple[Pyramid, str]:
    """The balloons pyramid (5 scales, finest 248x186) from ../shared or ./shared, else a synthetic 248x186 image
    (the same sizes, so the same cost)."""
    for path in (SHARED_BALLOONS, LOCAL_BALLOONS):
        if os.path.exists(path):
            return build_pyramid(Image.open(path), max_pixels=max_pixels), "balloons.png (248x186)"
    rng = np.random.default_rng(0)
    array = (rng.uniform(0, 1, (186, 248, 3)) * 255).astype(np.uint8)
    return build_pyramid(Image.fromarray(array), max_pixels=max_pixels), "synthetic 248x186 (../shared absent)"


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls, synchronising CUDA."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def peak_memory_mb(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
    try:
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} (process RSS)"
    except ImportError:  # pragma: no cover - not on Linux
        return "n/a"


def print_table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n## {title}\n")
    for note in notes:
        print(f"- {note}")
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def utc_now() -> str:
    """The date and time of a run, for the notes of a table."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cuda_only_reason(options: str, device: torch.device) -> str | None:
    """Why ``options`` (e.g. "--cuda_graphs") are skipped on ``device``; ``None`` on CUDA, where they apply."""
    if device.type == "cuda":
        return None
    return f"skipped {options}: CUDA only (this run is on {device.type})"


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak-memory count (CUDA); frees the cached blocks of earlier variants first."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def variant_peak_memory_mb(device: torch.device) -> str:
    """Peak allocated MB since `reset_peak_memory` (CUDA); a CPU process has only its lifetime peak RSS."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
    return "n/a (CPU)"


@contextlib.contextmanager
def backend_flags(cudnn_benchmark: bool = False, allow_tf32: bool = False) -> Iterator[None]:
    """cuDNN autotuning and TF32 (convolutions and matmuls) for the duration, restored afterwards.

    TF32 is off unless asked for: torch allows it in cuDNN convolutions by default, which would make the "exact fp32"
    rows on a GPU not fp32. The flags have no effect on CPU.
    """
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def tensor_conditioning(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook: the timestep and scale of a denoiser call as 0-d device tensors instead of Python ints.

    torch.compile specialises on int arguments, so the pipeline's int timesteps would recompile every step (and fall
    back to eager at dynamo's recompile limit); as tensors they are graph inputs. ``torch.full`` fills on the device,
    where ``torch.as_tensor(int, device="cuda")`` would make a synchronising host-to-device copy.
    """
    if len(args) < 3:
        return args, kwargs
    sample, timestep, scale, *rest = args
    if not isinstance(timestep, torch.Tensor):
        timestep = torch.full((), int(timestep), dtype=torch.long, device=sample.device)
    if not isinstance(scale, torch.Tensor):
        scale = torch.full((), float(scale), dtype=torch.float32, device=sample.device)
    return (sample, timestep, scale, *rest), kwargs


def compile_denoiser(denoiser: torch.nn.Module, mode: str = "default") -> torch.nn.Module:
    """``torch.compile(denoiser, mode=mode)``, called with tensor timestep/scale (`tensor_conditioning`).

    The hook sits on the compiled wrapper, so it runs outside the compiled region. The recompile limit is raised so
    that every image size (one per scale and batch size) gets its graph instead of a silent fallback to eager.
    """
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    compiled = torch.compile(denoiser, mode=mode)
    compiled.register_forward_pre_hook(tensor_conditioning, with_kwargs=True)
    return compiled


def progress(message: str) -> None:
    """A line on stderr as each variant ends, so a run cut short by a timeout still leaves its figures in the log."""
    print(message, file=sys.stderr, flush=True)
