"""One "fast" switch: the sampling settings measured fastest on the machine it runs on, with quality held.

`choose_fast_sampling` times the pipeline's real denoiser on one sample, once per process (cached): fp32, fp32 with
channels_last and bf16 with channels_last, and keeps the fastest; bf16 only when it beats the best fp32 setting by
`BF16_MARGIN`, so the choice is never slower than fp32 (on a CPU without bf16 instructions, AVX2 only, a bf16
denoiser is ~17x slower; on AVX-512 with bf16, AMX or a GPU it is faster). The steps are strided with the
second-order solver, which keeps the exact path's quality at large strides (benchmarks/RESULTS.md, "Fast sampling
settings"). A training-free denoiser is already on its own fast defaults and keeps them.

`SinDDMPipeline.enable_fast_sampling` applies the choice; ``generate --fast``, ``evaluate --fast``, the app's fast
mode and ``benchmarks/benchmark_fast_sampling.py --settings fast`` call it.

Example:
    >>> from sinddm_pipeline import SinDDMPipeline
    >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")
    >>> choice = pipe.enable_fast_sampling()  # a short probe, ~1 s on a CPU
    >>> choice.num_inference_steps, choice.solver_order
    ([10, 6, 5, 4, 3], 2)
    >>> pipe.scheduler.config.solver_order
    2
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .dtypes import quiet_dtype_cast

FAST_STEPS = (10, 6, 5, 4, 3)
"""Steps per scale, coarsest first, with the second-order solver; scales past the fifth take the last count. On the
shipped model: every metric within 10% of the exact path's (benchmarks/RESULTS.md), 263 -> 28 steps."""
BF16_MARGIN = 1.15
"""bf16 is chosen only when the best fp32 setting takes this many times longer per denoiser call: a measured gain,
not timing noise."""
CANDIDATES = (("fp32", torch.float32, False), ("fp32+cl", torch.float32, True), ("bf16+cl", torch.bfloat16, True))
"""(label, denoiser dtype, channels_last) of every setting the probe times, fp32 first."""

ProbeTimer = Callable[[str, torch.nn.Module, torch.Tensor, int], float]
"""``timer(label, denoiser, sample, scale) -> seconds per call``: replaces the measurement (tests)."""
_PROBES: dict[tuple, dict[str, float]] = {}


@dataclass(frozen=True)
class FastSamplingChoice:
    """The settings `enable_fast_sampling` applied and the probe that chose them.

    Args:
        dtype (`torch.dtype`): the denoiser's dtype (samples and the scheduler stay fp32).
        channels_last (`bool`): the denoiser's memory format.
        solver_order (`int`): the scheduler's solver (2: the multistep reblurring step).
        num_inference_steps (`list[int]`): steps per scale, coarsest first.
        timings (`dict[str, float]`): seconds per denoiser call of each probed setting (empty when nothing was
            probed); a setting whose first call was already far slower than fp32 is timed once.
        reason (`str`): why these settings, in words.
    """

    dtype: torch.dtype
    channels_last: bool
    solver_order: int
    num_inference_steps: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    @property
    def label(self) -> str:
        return ("bf16" if self.dtype == torch.bfloat16 else "fp32") + ("+cl" if self.channels_last else "")

    @property
    def bf16_slower(self) -> bool:
        """Whether the probe found bf16 slower than the best fp32 setting (an explicit bf16 then warrants a
        warning)."""
        if "bf16+cl" not in self.timings:
            return False
        return self.timings["bf16+cl"] * BF16_MARGIN > min(v for k, v in self.timings.items() if k != "bf16+cl")

    def probe_text(self) -> str:
        """The probe's timings in words, e.g. "fp32 73 ms, fp32+cl 43 ms, bf16+cl 132 ms" ("" when none)."""
        return ", ".join(f"{label} {seconds * 1000:.0f} ms" for label, seconds in self.timings.items())

    def summary(self) -> str:
        """One line for a log or a command line's output."""
        probe = self.probe_text()
        solver = "second-order solver" if self.solver_order == 2 else "first-order solver"
        text = f"fast sampling: {self.label}, {solver}, steps {self.num_inference_steps}"
        return text + (f" (probe per denoiser call: {probe}; {self.reason})" if probe else f" ({self.reason})")


def fast_steps(num_scales: int) -> list[int]:
    """`FAST_STEPS` for a model with ``num_scales`` scales."""
    return [FAST_STEPS[min(index, len(FAST_STEPS) - 1)] for index in range(num_scales)]


def time_denoiser_call(
    denoiser: torch.nn.Module, sample: torch.Tensor, scale: int, limit_s: float | None = None
) -> float:
    """Seconds per call of ``denoiser`` on ``sample`` at ``scale``: the best of two calls after a warm-up call, or
    the warm-up call alone when it took more than ``limit_s`` (a setting already known to lose)."""
    timestep = torch.full((sample.shape[0],), 1, dtype=torch.long, device=sample.device)

    def call() -> float:
        start = time.perf_counter()
        denoiser(sample, timestep, scale)
        if sample.device.type == "cuda":
            torch.cuda.synchronize(sample.device)
        return time.perf_counter() - start

    with torch.no_grad():
        first = call()
        if limit_s is not None and first > limit_s:
            return first
        return min(call(), call())


def probe_denoiser(denoiser: torch.nn.Module, sample_shape: tuple[int, ...], scale: int,
                   timer: ProbeTimer | None = None) -> dict[str, float]:
    """Seconds per denoiser call of every setting of `CANDIDATES`, each on a copy of ``denoiser`` (its own weights
    are never cast), on a random sample of ``sample_shape`` at ``scale``. Cached per process by the denoiser's class,
    config, device and the shape."""
    device = next(denoiser.parameters()).device
    config = json.dumps(dict(denoiser.config), sort_keys=True, default=str)
    key = (type(denoiser).__name__, config, str(device), tuple(sample_shape), scale)
    if timer is None and key in _PROBES:
        return _PROBES[key]
    sample = torch.randn(sample_shape, generator=torch.Generator().manual_seed(0)).to(device)
    timings: dict[str, float] = {}
    for label, dtype, channels_last in CANDIDATES:
        with quiet_dtype_cast():
            candidate = copy.deepcopy(denoiser).to(dtype).eval()
        if channels_last:
            candidate.to(memory_format=torch.channels_last)
        model_input = sample.to(dtype)
        if timer is not None:
            timings[label] = timer(label, candidate, model_input, scale)
        else:
            limit = 3 * min(timings.values()) if timings else None
            timings[label] = time_denoiser_call(candidate, model_input, scale, limit)
    if timer is None:
        _PROBES[key] = timings
    return timings


def choose_fast_sampling(pipe, timer: ProbeTimer | None = None) -> FastSamplingChoice:
    """The fast settings for ``pipe`` on its device (see the module docstring); ``timer`` replaces the measured
    probe (for tests: see `ProbeTimer`)."""
    num_scales = pipe.pyramid.num_scales
    if getattr(pipe.denoiser, "conditions_on_blurry_sample", False):
        steps = list(pipe.denoiser.config.num_inference_steps or fast_steps(num_scales))
        return FastSamplingChoice(torch.float32, False, 2, steps, reason="the training-free denoiser's fast defaults")
    # one sample two scales below the finest: a quarter of its pixels, the same kernels, a fraction of the time
    scale = max(0, num_scales - 3)
    height, width = pipe.scheduler.config.scale_sizes[scale]
    timings = probe_denoiser(pipe.denoiser, (1, 3, height, width), scale, timer)
    fp32_label = min(("fp32", "fp32+cl"), key=timings.__getitem__)
    if timings["bf16+cl"] * BF16_MARGIN < timings[fp32_label]:
        dtype, channels_last, reason = torch.bfloat16, True, "bf16 measured faster than fp32 here"
    else:
        dtype, channels_last = torch.float32, fp32_label == "fp32+cl"
        reason = "bf16 measured slower than fp32 here" if timings["bf16+cl"] > timings[fp32_label] else (
            "bf16 not faster than fp32 by the margin here"
        )
    return FastSamplingChoice(dtype, channels_last, 2, fast_steps(num_scales), timings, reason)
