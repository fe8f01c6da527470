"""Convert a checkpoint of the official SinDDM code (``model-N.pt``) into a diffusers-style SinDDMPipeline folder.

    python scripts/convert_original_checkpoint.py --checkpoint model-12.pt --image forest.png --output_dir forest/

The official checkpoint holds the denoiser weights but not the training image, whose pyramid fixes the scale sizes
and the blur schedule; give the same image the model was trained on. The checkpoint's ``gammas`` buffer is compared
with the schedule computed from the image, so a wrong image is refused rather than converted into a broken model.
The checkpoint is unpickled with an allow-list (tensors, containers, numbers): a file holding anything else is
refused without running any of it.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from sinddm_pipeline import SinDDMModel, SinDDMPipeline, SinDDMPyramid, SinDDMScheduler
from sinddm_pipeline.image_io import load_training_image
from sinddm_pipeline.original_checkpoint import (
    OriginalCheckpointError,
    convert_denoiser_state_dict,
    denoiser_dim,
    load_original_checkpoint,
)
from sinddm_pipeline.pyramid import DEFAULT_MAX_PIXELS, DEFAULT_SCALE_FACTOR, Pyramid, build_pyramid

GAMMA_TOLERANCE = 1e-4


class ConversionError(ValueError):
    """The inputs cannot be converted (wrong image, occupied output folder, ...)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Convert an official SinDDM checkpoint to a SinDDMPipeline folder.")
    parser.add_argument("--checkpoint", required=True, help="The official checkpoint (model-N.pt).")
    parser.add_argument("--image", required=True, help="The image the checkpoint was trained on.")
    parser.add_argument("--output_dir", required=True, help="Where the pipeline is saved (save_pretrained).")
    parser.add_argument(
        "--use_model_weights",
        action="store_true",
        help="Convert the raw 'model' weights instead of the EMA weights (the official sampler uses the EMA).",
    )
    parser.add_argument("--overwrite", action="store_true", help="Allow an output_dir that already holds a model.")
    parser.add_argument("--scale_factor", type=float, default=DEFAULT_SCALE_FACTOR, help="As at training (1.411).")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS, help="As at training (50,000).")
    return parser.parse_args(argv)


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConversionError(f"--output_dir {output_dir!r} is a file; give a folder.")
    if not overwrite and os.path.exists(os.path.join(output_dir, "model_index.json")):
        raise ConversionError(
            f"--output_dir {output_dir!r} already holds a model; choose another folder or pass --overwrite."
        )


def check_gammas(state_dict: dict[str, torch.Tensor], scheduler: SinDDMScheduler, pyramid: Pyramid) -> None:
    """Refuse an image whose blur schedule differs from the checkpoint's (it is not the training image)."""
    if "gammas" not in state_dict:
        raise ConversionError("The checkpoint's state dict holds no 'gammas' buffer: it is not a SinDDM checkpoint.")
    expected = state_dict["gammas"].float()
    sizes = ", ".join(f"{w}x{h}" for w, h in pyramid.sizes)
    hint = "Give the image this checkpoint was trained on (and its --scale_factor / --max_pixels, if not default)."
    if expected.shape != scheduler.gammas.shape:
        raise ConversionError(
            f"Wrong image for this checkpoint: it was trained on {expected.shape[0] + 1} scales of "
            f"{expected.shape[1]} steps, the image gives {pyramid.num_scales} scales ({sizes}). {hint}"
        )
    difference = float((expected - scheduler.gammas).abs().max())
    if difference > GAMMA_TOLERANCE:
        raise ConversionError(
            f"Wrong image for this checkpoint: its blur schedule (gammas) differs from the checkpoint's by up to "
            f"{difference:.3g} (scales {sizes}). {hint}"
        )


def convert(args: argparse.Namespace) -> SinDDMPipeline:
    """The pipeline of the checkpoint and its training image (checked against each other)."""
    check_output_dir(args.output_dir, args.overwrite)
    image = load_training_image(args.image)
    checkpoint = load_original_checkpoint(args.checkpoint)
    which = "model" if args.use_model_weights else "ema"
    state_dict = checkpoint.get(which)
    if not isinstance(state_dict, dict):
        raise OriginalCheckpointError(f"The checkpoint holds no {which!r} state dict.")

    pyramid = build_pyramid(image, max_pixels=args.max_pixels, scale_factor=args.scale_factor)
    num_timesteps = int(state_dict["betas"].shape[0]) if "betas" in state_dict else 100
    scheduler = SinDDMScheduler.from_pyramid(pyramid, num_train_timesteps=num_timesteps)
    check_gammas(state_dict, scheduler, pyramid)

    denoiser = SinDDMModel(dim=denoiser_dim(state_dict))
    denoiser.load_state_dict(convert_denoiser_state_dict(state_dict))
    return SinDDMPipeline(denoiser=denoiser.eval(), scheduler=scheduler, pyramid=SinDDMPyramid.from_pyramid(pyramid))


def main(argv: list[str] | None = None) -> int:
    """Convert; a bad input prints one ``error: ...`` line and returns 2 (nothing written)."""
    args = parse_args(argv)
    try:
        pipeline = convert(args)
    except (ValueError, OSError, KeyError, RuntimeError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    pipeline.save_pretrained(args.output_dir, safe_serialization=True)
    config = pipeline.scheduler.config
    print(
        f"Saved a SinDDMPipeline (dim {pipeline.denoiser.config.dim}, {len(config.scale_sizes)} scales, "
        f"{'model' if args.use_model_weights else 'EMA'} weights) to {args.output_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
