"""The tasks of `python -m sinddm_pipeline.generate --task ...`: which options each task takes, and the task pipeline
call they map to (``generate`` loads the model, loops over batches and writes the files).

Every option below defaults to ``None`` (not given): an option given to a task that does not take it is refused with
a parser error naming the tasks that do; one not given keeps the pipeline's default.

Example:
    >>> import argparse
    >>> from sinddm_pipeline.generate_tasks import TASKS, add_task_arguments, call_arguments, check_task_arguments
    >>> parser = argparse.ArgumentParser()
    >>> add_task_arguments(parser)
    >>> args = parser.parse_args(["--task", "outpaint", "--input", "in.png", "--left", "32"])
    >>> check_task_arguments(parser, args)
    >>> call_arguments(args)
    {'left': 32}
    >>> TASKS["outpaint"].stem, args.num_images  # files outpaint_0000.png, ...; one result by default
    ('outpaint', 1)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from PIL import Image

from .animation_export import MAX_FPS, mp4_available
from .image_io import load_training_image
from .known_pixels import FEATHER_RADIUS
from .pipeline_sinddm import SinDDMPipeline
from .pipeline_sinddm_animation import SinDDMAnimationPipeline
from .pipeline_sinddm_base import SinDDMPipelineBase
from .pipeline_sinddm_inpaint import MARGINS, SinDDMInpaintPipeline
from .pipeline_sinddm_paint import START_SCALE, SinDDMPaintPipeline
from .pipeline_sinddm_superres import START_TIMESTEP, SinDDMSuperResolutionPipeline


@dataclass(frozen=True)
class Task:
    """One ``--task``: its pipeline class, the stem of its file names, the options passed to the pipeline call
    under their own names (when given) and the other options it takes (``input`` and ``mask`` are required where
    taken)."""

    pipeline: type[SinDDMPipelineBase]
    stem: str
    call_options: tuple[str, ...]
    options: tuple[str, ...] = ()
    input_help: str = ""


IMAGES = ("num_images", "batch_size", "grid", "grid_columns")
SIZE = ("height_scale", "width_scale", "height", "width")
TASKS = {
    "sample": Task(SinDDMPipeline, "sample", (*SIZE, "tileable"), IMAGES),
    "paint": Task(SinDDMPaintPipeline, "paint", ("start_scale", "height", "width"), ("input", *IMAGES), "the painting"),
    "edit": Task(
        SinDDMPaintPipeline, "edit", ("start_scale", "feather_radius"), ("input", "mask", *IMAGES), "the edited image"
    ),
    "inpaint": Task(
        SinDDMInpaintPipeline,
        "inpaint",
        ("feather_radius", "resample_steps"),
        ("input", "mask", *IMAGES),
        "the image to inpaint",
    ),
    "outpaint": Task(
        SinDDMInpaintPipeline, "outpaint", (*MARGINS, "resample_steps"), ("input", *IMAGES), "the image to extend"
    ),
    "super_resolution": Task(
        SinDDMSuperResolutionPipeline,
        "super_resolution",
        ("upscale_factor", "start_timestep", "tileable"),
        ("input", *IMAGES),
        "the image to upscale",
    ),
    "animate": Task(
        SinDDMAnimationPipeline,
        "animation",
        ("num_frames", "variation", "animated_scales", *SIZE, "tileable"),
        ("fps", "animation_format"),
    ),
}

OPTIONS: dict[str, dict] = {
    "input": {
        "metavar": "FILE",
        "help": "The input image: the painting, the edited image, or the image to inpaint, outpaint or upscale.",
    },
    "mask": {
        "metavar": "FILE",
        "help": "White marks the region to regenerate (edit) or the hole to fill (inpaint); resized to --input.",
    },
    "num_images": {"type": int, "help": "How many images (default: 4 for sample, 1 for the image-input tasks)."},
    "batch_size": {"type": int, "help": "Images per pipeline call (default 4)."},
    "grid": {"help": "Also save all the images as one grid image at this path (never over an existing file)."},
    "grid_columns": {"type": int, "help": "Columns of --grid (default 4)."},
    "height_scale": {"type": float, "help": "Output height as a multiple of the model's (default 1)."},
    "width_scale": {"type": float, "help": "Output width as a multiple of the model's (default 1)."},
    "height": {"type": int, "help": "Output height in pixels (paint: default from the painting's aspect ratio)."},
    "width": {"type": int, "help": "Output width in pixels."},
    "tileable": {"action": "store_true", "default": None, "help": "Seamless output that tiles without seams."},
    "start_scale": {
        "type": int,
        "help": f"The scale the input is injected at, in [1, scales - 1] (default {START_SCALE}): finer keeps more.",
    },
    "feather_radius": {
        "type": int,
        "help": f"Pixels over which the regenerated region blends in, in [0, 64] (default {FEATHER_RADIUS}).",
    },
    **{margin: {"type": int, "help": f"Pixels added on the {margin} side."} for margin in MARGINS},
    "resample_steps": {
        "type": int,
        "help": "RePaint resampling of the coarsest scale's steps, in [0, 20] (default 0: off).",
    },
    "upscale_factor": {"type": float, "help": "In [1.25, 4] (default 2)."},
    "start_timestep": {
        "type": int,
        "help": f"The timestep every stage is noised to, in [1, T] (default {START_TIMESTEP} or the finest scale's "
        "t_i if smaller): lower keeps more of the input.",
    },
    "num_frames": {"type": int, "help": "Frames of the loop, in [2, 240] (default 16)."},
    "variation": {
        "type": float,
        "help": "How much the frames differ (default 0.5; 0.2: a shimmer, 1: the layout wanders).",
    },
    "animated_scales": {"type": int, "help": "How many of the coarsest scales move (default 2)."},
    "fps": {"type": float, "help": f"Frames per second, in (0, {MAX_FPS}] (default 10)."},
    "animation_format": {"choices": ("gif", "mp4"), "help": "gif (default) or mp4 (needs pip install imageio-ffmpeg)."},
}


def tasks_taking(option: str) -> list[str]:
    return [name for name, task in TASKS.items() if option in task.call_options + task.options]


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--task`` and every task's options (all defaulting to ``None``) to ``parser``."""
    parser.add_argument("--task", choices=list(TASKS), default="sample", help="What to make (default: sample).")
    group = parser.add_argument_group("task options (each only for the tasks in brackets)")
    for option, spec in OPTIONS.items():
        help_text = f"{spec['help']} [{', '.join(tasks_taking(option))}]"
        group.add_argument(f"--{option}", **{"default": None, **spec, "help": help_text})


def check_task_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``, exit 2) options the task does not take and missing or out-of-range ones, then fill
    in the command line's own defaults (``num_images``, ``batch_size``, ``grid_columns``, ``fps``, the format)."""
    task = TASKS[args.task]
    for option in OPTIONS:
        if getattr(args, option) is not None and option not in task.call_options + task.options:
            parser.error(
                f"--{option} applies to --task {', '.join(tasks_taking(option))} only, not --task {args.task}."
            )
    if "input" in task.options and args.input is None:
        parser.error(f"--task {args.task} needs --input FILE ({task.input_help}).")
    if "mask" in task.options and args.mask is None:
        parser.error(f"--task {args.task} needs --mask FILE (white: the region to regenerate).")
    if args.task == "outpaint" and not any((getattr(args, margin) or 0) > 0 for margin in MARGINS):
        parser.error("--task outpaint needs a margin: at least one of --top, --bottom, --left, --right > 0 (pixels).")
    if args.fps is not None and not 0 < args.fps <= MAX_FPS:
        parser.error(f"--fps must be in (0, {MAX_FPS}], got {args.fps}.")
    if args.animation_format == "mp4" and not mp4_available():
        parser.error(
            "--animation_format mp4 needs the imageio-ffmpeg package: pip install imageio-ffmpeg (or use gif)."
        )
    if "num_images" in task.options:
        args.num_images = args.num_images if args.num_images is not None else 4 if args.task == "sample" else 1
        args.batch_size = args.batch_size if args.batch_size is not None else 4
        args.grid_columns = args.grid_columns if args.grid_columns is not None else 4
        if args.num_images < 1 or args.batch_size < 1:
            parser.error("--num_images and --batch_size must be >= 1.")
    if args.task == "animate":
        args.fps = args.fps if args.fps is not None else 10.0
        args.animation_format = args.animation_format or "gif"


def load_task_inputs(args: argparse.Namespace) -> dict[str, Image.Image]:
    """The pipeline call's ``image`` (``--input``) and ``mask_image`` (``--mask``), read as RGB (FileNotFoundError
    or ValueError for a file that is not a readable image)."""
    files = {"image": args.input, "mask_image": args.mask}
    return {name: load_training_image(path) for name, path in files.items() if path is not None}


def task_pipeline(args: argparse.Namespace, pipe: SinDDMPipeline) -> SinDDMPipelineBase:
    """``pipe``'s components in the pipeline class of ``--task`` (``from_pipe``: shared, not copied)."""
    cls = TASKS[args.task].pipeline
    return pipe if type(pipe) is cls else cls.from_pipe(pipe)


def call_arguments(args: argparse.Namespace) -> dict:
    """The task's options that were given, as keyword arguments of its pipeline call."""
    values = {option: getattr(args, option) for option in TASKS[args.task].call_options}
    return {option: value for option, value in values.items() if value is not None}
