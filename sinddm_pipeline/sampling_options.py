"""The fast-sampling options shared by the command lines (`generate`, `evaluate`): ``--fast`` (the settings a probe
measured fastest on this machine, `sinddm_pipeline.fast_sampling`), or by hand dtype, channels_last, strides and the
scheduler's solver order. Every option's default is the exact reference path.

Example:
    >>> import argparse
    >>> from sinddm_pipeline.sampling_options import add_sampling_arguments
    >>> parser = argparse.ArgumentParser()
    >>> add_sampling_arguments(parser)
    >>> args = parser.parse_args(["--dtype", "bf16", "--channels_last", "--solver_order", "2",
    ...                           "--num_inference_steps", "10", "6", "5", "4", "3"])
    >>> args.num_inference_steps, args.solver_order
    ([10, 6, 5, 4, 3], 2)
"""

from __future__ import annotations

import argparse
import logging

import torch

from .pipeline_sinddm import SinDDMPipeline
from .scheduling_sinddm import SinDDMScheduler

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
logger = logging.getLogger(__name__)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --fast, --num_inference_steps, --dtype, --channels_last and --solver_order to ``parser``."""
    group = parser.add_argument_group("fast sampling (every default is the exact reference path)")
    group.add_argument(
        "--fast",
        action="store_true",
        help="The settings a short probe measures fastest on this machine (dtype, memory format) with the "
        "second-order solver and strided steps (pipe.enable_fast_sampling); the options below override it.",
    )
    group.add_argument(
        "--num_inference_steps",
        type=int,
        nargs="+",
        default=None,
        help="Strided sampling: one count for every scale, or one per scale, coarsest first (default: every step). "
        "Large strides need --solver_order 2.",
    )
    group.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default=None,
        help="The denoiser's weights cast to this dtype for sampling (samples and the scheduler stay fp32; not "
        "training's --mixed_precision, which is autocast over fp32 weights); default fp32, the exact path (with "
        "--fast: the probe's choice). bf16 warns where the probe measured it slower than fp32.",
    )
    group.add_argument("--channels_last", action="store_true", help="channels_last denoiser (faster on CPU).")
    group.add_argument(
        "--solver_order",
        type=int,
        choices=(1, 2),
        default=None,
        help="1: the reference reblurring step; 2: the multistep solver, for large strides (see SinDDMScheduler); "
        "default: the saved scheduler's.",
    )


def steps_argument(args: argparse.Namespace) -> int | list[int] | None:
    """--num_inference_steps as the pipeline takes it: one count as an int, several as a list."""
    steps = args.num_inference_steps
    return steps[0] if steps is not None and len(steps) == 1 else steps


def apply_sampling_options(pipe: SinDDMPipeline, args: argparse.Namespace) -> None:
    """Set the denoiser's dtype and memory format and the scheduler's solver order of ``args`` on ``pipe`` (first
    the probe's choice with ``--fast``, printed), after checking the step counts against its scales (a bad count
    fails before any sampling)."""
    pipe.check_num_inference_steps(steps_argument(args))
    choice = None
    if getattr(args, "fast", False):
        choice = pipe.enable_fast_sampling()
        print(choice.summary())
    if args.dtype is not None:
        if args.dtype == "bf16" and not getattr(pipe.denoiser, "conditions_on_blurry_sample", False):
            from .fast_sampling import choose_fast_sampling

            choice = choice or choose_fast_sampling(pipe)
            if choice.bf16_slower:
                logger.warning(
                    "--dtype bf16: the probe measured bf16 slower than fp32 on this machine (%s); the exact fp32 "
                    "path or --fast is faster here.",
                    choice.probe_text(),
                )
        pipe.denoiser.to(DTYPES[args.dtype])
    if args.channels_last:
        pipe.denoiser.to(memory_format=torch.channels_last)
    if args.solver_order not in (None, pipe.scheduler.config.solver_order):
        pipe.scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=args.solver_order)
    pipe._fast_choice = choice


def sampling_record(pipe: SinDDMPipeline, args: argparse.Namespace) -> dict:
    """The sampling settings actually used, for a report."""
    dtype = {value: key for key, value in DTYPES.items()}.get(pipe.denoiser.dtype, str(pipe.denoiser.dtype))
    steps = pipe.default_num_inference_steps(steps_argument(args))
    choice = getattr(pipe, "_fast_choice", None)
    return {
        "num_inference_steps": list(steps) if isinstance(steps, (list, tuple)) else steps,
        "dtype": dtype,
        "channels_last": args.channels_last or bool(choice and choice.channels_last),
        "solver_order": pipe.scheduler.config.solver_order,
        **({"fast": choice.summary()} if getattr(args, "fast", False) and choice else {}),
    }
