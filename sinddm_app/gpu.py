"""Task handlers on Hugging Face's ZeroGPU: `on_gpu` wraps each in ``@spaces.GPU`` there, and changes nothing on a CPU
Space or a laptop (where the `spaces` package is absent)."""

from __future__ import annotations

from collections.abc import Callable

from .errors import readable_errors

try:  # Hugging Face's ZeroGPU package, on a ZeroGPU Space; elsewhere absent (this repo's spaces/ folder has no GPU)
    import spaces
except ImportError:
    spaces = None

ZERO_GPU = callable(getattr(spaces, "GPU", None))
"""On a ZeroGPU Space: every task runs under ``@spaces.GPU`` (see `on_gpu`); a CPU Space or a laptop is unchanged.
No handler uses torch.compile or CUDA graphs, which ZeroGPU's per-call GPU attachment does not keep."""
GPU_SECONDS = 60
"""ZeroGPU duration of a sampling or editing request (seconds): tens of denoiser calls, a few seconds on a GPU."""


def on_gpu(duration: int | Callable[..., int]) -> Callable[[Callable], Callable]:
    """A task handler: readable errors (`readable_errors`), and ``@spaces.GPU(duration=duration)`` on a ZeroGPU
    Space (``duration``: seconds, or a function of the handler's arguments)."""

    def wrap(handler: Callable) -> Callable:
        handler = readable_errors(handler)
        return spaces.GPU(duration=duration)(handler) if ZERO_GPU else handler

    return wrap
