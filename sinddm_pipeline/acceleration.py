"""Fast inference for the SinDDM pipelines: half-precision denoisers and CUDA graphs, behind explicit options.

Every pipeline of this package calls its denoiser through `FastInferenceMixin.predict_noise`, which

- runs the denoiser in its own dtype (e.g. ``dtype=torch.bfloat16`` at load time) while the samples and the
  scheduler's arithmetic stay in float32 (`sample_dtype`), so a bf16 denoiser costs accuracy in the noise estimate
  only, never in the blur/noise bookkeeping;
- replays a captured CUDA graph per (shape, scale) once `enable_cuda_graphs` was called: one launch per denoiser
  call instead of ~40 small kernels, which is what bounds batch-1 sampling on a GPU.

The exact path is the default: fp32 weights, no graphs. channels_last and ``torch.compile`` need no support code:
``pipe.denoiser.to(memory_format=torch.channels_last)`` and ``pipe.denoiser = torch.compile(pipe.denoiser)``.

Example:
    ```py
    >>> import torch
    >>> from sinddm_pipeline import SinDDMPipeline
    >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> pipe = pipe.to("cuda")  # doctest: +SKIP
    >>> pipe.enable_cuda_graphs()  # doctest: +SKIP
    >>> images = pipe(batch_size=16).images  # doctest: +SKIP
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from .dtypes import HALF_DTYPES, quiet_dtype_cast


class CUDAGraphDenoiser:
    """Calls a denoiser through CUDA graphs, captured lazily, one per (input shape, dtype, scale).

    The timestep is an input of the graph (a static device tensor), so one capture serves every step of a scale.
    Inputs are copied into static buffers and the output is cloned out of the graph's pool, so callers may keep
    results across calls. Only for inference (no autograd) on CUDA.

    Args:
        denoiser: the noise predictor, called as ``denoiser(sample, timestep, scale).sample``.
        warmup_calls: eager calls on a side stream before a capture (lets cuDNN pick its algorithms).
    """

    def __init__(self, denoiser: torch.nn.Module, warmup_calls: int = 2):
        self.denoiser = denoiser
        self.warmup_calls = warmup_calls
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def reset(self) -> None:
        """Drop every captured graph (after the denoiser's weights or dtype changed)."""
        self._graphs.clear()

    def _capture(self, sample: torch.Tensor, scale: int):
        static_sample = sample.clone()
        static_timestep = torch.zeros((), dtype=torch.long, device=sample.device)
        static_scale = torch.full((), float(scale), dtype=torch.float32, device=sample.device)
        side = torch.cuda.Stream(sample.device)
        side.wait_stream(torch.cuda.current_stream(sample.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup_calls):
                self.denoiser(static_sample, static_timestep, static_scale)
        torch.cuda.current_stream(sample.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            static_output = self.denoiser(static_sample, static_timestep, static_scale).sample
        return graph, static_sample, static_timestep, static_output

    def __call__(self, sample: torch.Tensor, timestep: int | torch.Tensor, scale: int) -> torch.Tensor:
        if sample.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the sample on a CUDA device, got {sample.device}.")
        key = (tuple(sample.shape), sample.dtype, sample.device, int(scale))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(sample, int(scale))
        graph, static_sample, static_timestep, static_output = entry
        static_sample.copy_(sample)
        if isinstance(timestep, torch.Tensor):
            static_timestep.copy_(timestep.reshape(()))
        else:
            static_timestep.fill_(int(timestep))
        graph.replay()
        return static_output.clone()


CALLBACK_TENSOR_INPUTS = ("sample",)
"""What ``callback_on_step_end`` may read and replace: the sample after the step (diffusers' ``latents``)."""


class FastInferenceMixin:
    """Denoiser calls with an optional half-precision denoiser and CUDA graphs (see the module docstring), and
    diffusers' ``callback_on_step_end`` for every denoising loop of this package."""

    _cuda_graph_denoiser: CUDAGraphDenoiser | None = None
    _fast_num_inference_steps: list[int] | None = None
    _step_callback: Callable | None = None
    _step_index: int = 0
    _num_timesteps: int | None = None
    _interrupt: bool = False

    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` in ``callback_on_step_end`` to stop the call after that step (as in
        diffusers' pipelines): no further step runs, at any scale, and the call returns the sample as it is then
        (at the size of the scale it stopped at)."""
        return self._interrupt

    @property
    def num_timesteps(self) -> int | None:
        """The denoising steps of the current (or last) call, over every scale: what ``step_index`` of
        ``callback_on_step_end`` counts up to (diffusers pipelines expose the same)."""
        return self._num_timesteps

    @contextlib.contextmanager
    def step_callback(self, callback_on_step_end: Callable | None, tensor_inputs: Sequence[str] | None = None):
        """Within this block every denoising step of the pipeline ends with ``callback_on_step_end(pipe,
        step_index, timestep, {"sample": sample})`` (diffusers' signature; ``step_index`` counts the steps of the
        whole call, over every scale); a returned ``{"sample": ...}`` replaces the sample. ``tensor_inputs``: the
        names passed, a subset of `CALLBACK_TENSOR_INPUTS`."""
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(
                "callback_on_step_end must be a function (pipe, step_index, timestep, callback_kwargs) -> dict, "
                f"got {callback_on_step_end!r}."
            )
        names = list(CALLBACK_TENSOR_INPUTS if tensor_inputs is None else tensor_inputs)
        unknown = sorted(set(names) - set(CALLBACK_TENSOR_INPUTS))
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs may name {list(CALLBACK_TENSOR_INPUTS)}, got {unknown}."
            )
        self._step_callback, self._step_index, self._callback_names = callback_on_step_end, 0, names
        self._interrupt = False
        try:
            yield
        finally:
            self._step_callback = None

    def end_step(self, timestep: int | torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Call the step callback (if any) after one denoising step; returns the (possibly replaced) sample."""
        index, self._step_index = self._step_index, self._step_index + 1
        if self._step_callback is None:
            return sample
        tensors = {"sample": sample}
        outputs = self._step_callback(self, index, timestep, {name: tensors[name] for name in self._callback_names})
        return (outputs or {}).get("sample", sample)

    @property
    def sample_dtype(self) -> torch.dtype:
        """The dtype of the samples and of the scheduler's arithmetic: float32 for a half-precision denoiser,
        else the denoiser's own (float32, or float64 for reference checks)."""
        dtype = self.denoiser.dtype
        return torch.float32 if dtype in HALF_DTYPES else dtype

    def enable_cuda_graphs(self) -> None:
        """Replay the denoiser through CUDA graphs (captured on first use per size and scale; a capture costs a few
        eager calls). Same numbers as the eager path up to cuDNN's algorithm choice. The pipeline must be on CUDA.

        Example:
            ```py
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm").to("cuda")  # doctest: +SKIP
            >>> pipe.enable_cuda_graphs()  # doctest: +SKIP
            ```
        """
        if getattr(self.denoiser, "conditions_on_blurry_sample", False):
            raise ValueError("CUDA graphs are for the trained SinDDMModel; the training-free denoiser runs eagerly.")
        device = self.denoiser.device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need the pipeline on a CUDA device (pipe.to('cuda')), it is on {device}.")
        self._cuda_graph_denoiser = CUDAGraphDenoiser(self.denoiser)

    def enable_fast_sampling(self, timer=None):
        """Switch to the sampling settings measured fastest on this device, with quality held (see
        `sinddm_pipeline.fast_sampling`): a short probe of the denoiser (cached per process) picks fp32 or bf16 and
        the memory format, the scheduler gets the second-order solver and calls without ``num_inference_steps``
        take the strided fast steps. Returns the [`~fast_sampling.FastSamplingChoice`] (``.summary()`` says what
        was chosen and why). ``timer`` replaces the measured probe (tests).

        Example:
            ```py
            >>> pipe = SinDDMPipeline.from_pretrained("models/hubble-sinddm")  # doctest: +SKIP
            >>> print(pipe.enable_fast_sampling().summary())  # doctest: +SKIP
            fast sampling: fp32+cl, second-order solver, steps [10, 6, 5, 4, 3] (probe per denoiser call: ...)
            ```
        """
        from .fast_sampling import choose_fast_sampling
        from .scheduling_sinddm import SinDDMScheduler

        choice = choose_fast_sampling(self, timer)
        with quiet_dtype_cast():
            self.denoiser.to(choice.dtype)
        if choice.channels_last:
            self.denoiser.to(memory_format=torch.channels_last)
        if self.scheduler.config.solver_order != choice.solver_order:
            self.scheduler = SinDDMScheduler.from_config(self.scheduler.config, solver_order=choice.solver_order)
        self._fast_num_inference_steps = choice.num_inference_steps
        if self._cuda_graph_denoiser is not None:
            self._cuda_graph_denoiser.reset()
        return choice

    def disable_cuda_graphs(self) -> None:
        """Back to eager denoiser calls (releases the captured graphs)."""
        self._cuda_graph_denoiser = None

    def predict_noise(
        self,
        sample: torch.Tensor,
        timestep: int | torch.Tensor,
        scale: int,
        blurry_sample: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The denoiser's noise estimate for ``sample``, computed in the denoiser's dtype, returned in the sample's.

        ``blurry_sample`` (the up-sampled previous scale, at scales > 0) goes to denoisers that condition on it (the
        training-free `SinDDMPatchDenoiser`); the trained `SinDDMModel` does not take it.
        """
        model_input = sample.to(self.denoiser.dtype)
        if getattr(self.denoiser, "conditions_on_blurry_sample", False):
            blurry = None if blurry_sample is None else blurry_sample.to(self.denoiser.dtype)
            return self.denoiser(model_input, timestep, scale, blurry_sample=blurry).sample.to(sample.dtype)
        runner = self._cuda_graph_denoiser
        if (
            runner is not None
            and runner.denoiser is self.denoiser
            and model_input.device.type == "cuda"
            and not torch.is_grad_enabled()
        ):
            noise = runner(model_input, timestep, scale)
        else:
            noise = self.denoiser(model_input, timestep, scale).sample
        return noise.to(sample.dtype)
