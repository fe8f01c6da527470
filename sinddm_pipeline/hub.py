"""Pushing a trained SinDDM model to the Hugging Face Hub: a model card, then the pipeline folder.

`train_sinddm.py --push_to_hub` calls [`push_training_output`] once training is done. The card says what the
model is (metadata for the Hub's filters), shows the training image and the loss curve, lists the training
arguments and how to load the pipeline.

Example:
    >>> from sinddm_pipeline.hub import model_card
    >>> card = model_card("me/sinddm-balloons", {"image_path": "balloons.png", "max_train_steps": 120000})
    >>> card.data.library_name, card.data.pipeline_tag
    ('diffusers', 'unconditional-image-generation')
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData

TRAINING_IMAGE_NAME = "training_image.png"
# Checkpoints (optimizer state, RNG, pickles) and the raw loss log stay local; the pipeline and the card go up.
UPLOAD_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", "loss_log.json", "*.tmp"]
_SECRET_ARGS = ("hub_token",)


def model_card(repo_id: str, training_args: dict, has_loss_curve: bool = False) -> ModelCard:
    """The README.md of a model trained by `train_sinddm.py` on one image."""
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        tags=["sinddm", "single-image"],
        license="mit",
    )
    arguments = json.dumps({k: v for k, v in training_args.items() if k not in _SECRET_ARGS}, indent=2)
    image_name = os.path.basename(str(training_args.get("image_path", "")))
    loss_curve = "\n## Training loss\n\n![loss curve](loss_curve.png)\n" if has_loss_curve else ""
    body = f"""
# SinDDM: {repo_id}

A [SinDDM](https://arxiv.org/abs/2211.16582) (single-image denoising diffusion model) trained on one image,
`{image_name}`, with `train_sinddm.py` of `sinddm_pipeline` (a diffusers port of the
[official code](https://github.com/fallenshock/SinDDM)). It generates new images with the same patch statistics,
coarse to fine, at the training size or any other.

## Training image

![training image]({TRAINING_IMAGE_NAME})

## Usage

```python
from sinddm_pipeline import SinDDMPipeline

pipeline = SinDDMPipeline.from_pretrained("{repo_id}")
images = pipeline(batch_size=4).images          # like the training image
wide = pipeline(width_scale=2.0).images[0]      # retargeted: twice as wide
```
{loss_curve}
## Training arguments

```json
{arguments}
```
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def save_training_image(output_dir: str) -> str:
    """Write the finest scale of the stored pyramid (the image the model learned) as ``training_image.png``."""
    from .modeling_pyramid import SinDDMPyramid

    pyramid = SinDDMPyramid.from_pretrained(output_dir, subfolder="pyramid")
    path = os.path.join(output_dir, TRAINING_IMAGE_NAME)
    pyramid.pil(pyramid.num_scales - 1).save(path)
    return path


def push_training_output(args: argparse.Namespace) -> str:
    """Create the Hub repo, write the model card and upload the pipeline folder (without checkpoints).

    Args:
        args: the training arguments; uses ``output_dir``, ``hub_model_id`` (default: the folder's name),
            ``hub_private_repo`` and ``hub_token``.

    Returns:
        The repo id (``user/name``).
    """
    api = HfApi(token=args.hub_token)
    repo_name = args.hub_model_id or Path(args.output_dir).resolve().name
    repo_id = api.create_repo(repo_name, private=args.hub_private_repo, exist_ok=True).repo_id
    save_training_image(args.output_dir)
    has_loss_curve = os.path.exists(os.path.join(args.output_dir, "loss_curve.png"))
    model_card(repo_id, vars(args), has_loss_curve).save(os.path.join(args.output_dir, "README.md"))
    api.upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message="Upload SinDDM pipeline trained with train_sinddm.py",
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
    )
    return repo_id
