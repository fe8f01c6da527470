"""An image with a region marked on it, as the Harmonize, Edit and Inpaint tabs take it: an image editor where the
region is brushed, or an uploaded mask (white where the region is).

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> layer = Image.new("RGBA", (80, 60))
    >>> layer.paste((255, 0, 0, 255), (30, 20, 50, 40))  # a brushed 20x20 square
    >>> background, mask = editor_parts({"background": Image.new("RGB", (80, 60)), "layers": [layer]})
    >>> background.size, int((np.asarray(mask) > 0).sum())
    ((80, 60), 400)
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from .inputs import open_image
from .widgets import readable_upload_errors


def editor_parts(value: Any) -> tuple[Any, Image.Image | None]:
    """(background, brushed mask) of a gr.ImageEditor value; the mask is white where any layer was painted."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        return value, None
    background = value.get("background")
    if background is None:
        background = value.get("composite")
    mask = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        layer = Image.open(layer) if isinstance(layer, (str, os.PathLike)) else layer
        layer = Image.fromarray(layer) if isinstance(layer, np.ndarray) else layer
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        mask = alpha if mask is None else mask | alpha
    if mask is None or not mask.any():
        return background, None
    return background, Image.fromarray((mask * 255).astype(np.uint8))


def editor_inputs(editor_label: str, mask_label: str) -> tuple[gr.ImageEditor, gr.Image]:
    """The image editor (the region brushed in red on the image) and, beside it, the mask upload."""
    with gr.Row():
        editor = readable_upload_errors(
            gr.ImageEditor(type="pil", label=editor_label, brush=gr.Brush(colors=["#ff0000"]))
        )
        mask_file = readable_upload_errors(gr.Image(type="filepath", label=mask_label, image_mode="L"))
    return editor, mask_file


def image_and_mask(value: Any, mask_file: Any, name: str, missing_mask: str) -> tuple[Image.Image, Any, str]:
    """The checked image of an editor value (see `inputs.open_image`: named ``name``) and its mask: the uploaded one,
    else the brushed one, else a gr.Error saying ``missing_mask`` (a mask that is black everywhere is the pipeline's
    to refuse). Returns (image, mask, the resize note)."""
    background, brushed = editor_parts(value)
    image, note = open_image(background, name)
    mask, _ = open_image(mask_file, "The mask", required=False)
    mask = mask if mask is not None else brushed
    if mask is None:
        raise gr.Error(missing_mask)
    return image, mask, note
