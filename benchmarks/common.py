"""Shared helpers of the benchmarks: the machine description, timing and table printing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from sinddm_pipeline.pyramid import Pyramid, build_pyramid

SHARED_BALLOONS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "images", "balloons.png")


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return (
        f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    )


def balloons_pyramid(max_pixels: int = 50_000) -> tuple[Pyramid, str]:
    """The balloons pyramid (5 scales, finest 248x186) when ../shared is there, else a synthetic 248x186 image."""
    if os.path.exists(SHARED_BALLOONS):
        return build_pyramid(Image.open(SHARED_BALLOONS), max_pixels=max_pixels), "balloons.png (248x186)"
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
