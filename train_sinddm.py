"""Train a SinDDM model on one image.

    accelerate launch train_sinddm.py --image_path my.jpg --output_dir models/my-sinddm
    python train_sinddm.py --image_path my.jpg --output_dir out --max_train_steps 2000 --dim 64   # quick, CPU

The output folder ends as a ready pipeline (the EMA weights): `SinDDMPipeline.from_pretrained(output_dir)`.
Checkpoints go to `output_dir/checkpoint-<step>/` (accelerate state + EMA + RNG); `--resume_from_checkpoint latest`
continues a killed run where its last checkpoint left it. Several processes (GPUs, or CPU processes with gloo)
split the global batch (data parallel):

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        train_sinddm.py ...
    torchrun --nproc_per_node 2 train_sinddm.py ...

On a machine without GPUs, `--multi_gpu` is still the flag that starts several (CPU) processes:
`accelerate launch --cpu --num_processes 2` starts one.

The options are the fields of `sinddm_pipeline.training_config.TrainingConfig` (defaults and help there); the loop
is `sinddm_pipeline.trainer.train(config)`, which the app's Train tab calls too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from dataclasses import MISSING, fields

from sinddm_pipeline import SinDDMPipeline
from sinddm_pipeline.trainer import TrainingConfig, train
from sinddm_pipeline.training_config import SPEED


def _argument(item, hint) -> dict:
    """`argparse.add_argument` keywords of one TrainingConfig field: flags for bools, ``nargs`` for lists, the type
    of an optional value."""
    metadata = item.metadata
    default = item.default_factory() if item.default_factory is not MISSING else item.default
    kwargs = {"help": metadata["help"], **metadata.get("argparse", {})}
    if metadata.get("required"):
        return {**kwargs, "required": True}
    if hint is bool:
        return {**kwargs, "action": "store_true"}
    if typing.get_origin(hint) is list:
        return {**kwargs, "type": typing.get_args(hint)[0], "nargs": "*", "default": default}
    value_type = next(arg for arg in typing.get_args(hint) or (hint,) if arg is not type(None))
    return {"type": value_type, "default": default, **kwargs}


def parse_args(argv: list[str] | None = None) -> TrainingConfig:
    """The command line as a TrainingConfig (a bad value exits with code 2 and a message naming the option)."""
    parser = argparse.ArgumentParser(description="Train a SinDDM model on a single image.")
    speed = parser.add_argument_group("speed-ups (off by default: the reference recipe is exact fp32)")
    hints = typing.get_type_hints(TrainingConfig)
    for item in fields(TrainingConfig):
        group = speed if item.metadata.get("group") == SPEED else parser
        group.add_argument(f"--{item.name}", **_argument(item, hints[item.name]))
    args = parser.parse_args(argv)
    try:
        return TrainingConfig(**vars(args))
    except ValueError as error:
        parser.error(f"--{error}")  # the message starts with the field's name


def main(config: TrainingConfig) -> SinDDMPipeline:
    """Train as the script does: logging to the console, then `sinddm_pipeline.trainer.train(config)`."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    return train(config)


def cli(argv: list[str] | None = None) -> int:
    """Run as a script: a bad input (missing or unreadable image, image too small, occupied output folder, ...)
    prints one ``error: ...`` line and returns 2 instead of a traceback."""
    config = parse_args(argv)
    try:
        main(config)
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
