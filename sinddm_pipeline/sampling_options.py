"""The fast-sampling options shared by the command lines (`generate`, `evaluate`): dtype, channels_last, strides and
the scheduler's solver order. Every option's default is the exact reference path.

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

import torch

from .pipeline_sinddm import SinDDMPipeline
from .scheduling_sinddm import SinDDMScheduler

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --num_inference_steps, --dtype, --channels_last and --solver_order to ``parser``."""
    group = parser.add_argument_group("fast sampling (every default is the exact reference path)")
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
        default="fp32",
        help="The denoiser's dtype (samples and the scheduler stay fp32); fp32 is the exact path.",
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
    """Set the denoiser's dtype and memory format and the scheduler's solver order of ``args`` on ``pipe``, after
    checking the step counts against its scales (a bad count fails before any sampling)."""
    pipe.check_num_inference_steps(steps_argument(args))
    pipe.denoiser.to(DTYPES[args.dtype])
    if args.channels_last:
        pipe.denoiser.to(memory_format=torch.channels_last)
    if args.solver_order not in (None, pipe.scheduler.config.solver_order):
        pipe.scheduler = SinDDMScheduler.from_config(pipe.scheduler.config, solver_order=args.solver_order)


def sampling_record(pipe: SinDDMPipeline, args: argparse.Namespace) -> dict:
    """The sampling settings actually used, for a report."""
    return {
        "num_inference_steps": steps_argument(args),
        "dtype": args.dtype,
        "channels_last": args.channels_last,
        "solver_order": pipe.scheduler.config.solver_order,
    }
