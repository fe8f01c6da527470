"""SinDDM (ICML 2023) as Hugging Face diffusers components: train on one image, generate endless variations."""

from .modeling_patch_denoiser import SinDDMPatchDenoiser, SinDDMPatchDenoiserOutput
from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel, SinDDMModelOutput
from .pipeline_sinddm import SinDDMPipeline
from .pipeline_sinddm_img2img import SinDDMImg2ImgPipeline
from .scheduling_sinddm import SinDDMScheduler, SinDDMSchedulerOutput
from .version import __version__ as __version__

# The CLIP pipeline imports transformers, which takes seconds: it is imported on first use.
_LAZY = {
    "SinDDMCLIPPipeline": "pipeline_sinddm_clip",
    "SinDDMCLIPPipelineOutput": "pipeline_sinddm_clip",
    "SinDDMAnimationPipeline": "pipeline_sinddm_animation",
    "SinDDMAnimationPipelineOutput": "pipeline_sinddm_animation",
    "SinDDMInpaintPipeline": "pipeline_sinddm_inpaint",
    "SinDDMPaintPipeline": "pipeline_sinddm_paint",
    "SinDDMSuperResolutionPipeline": "pipeline_sinddm_superres",
    "export_animation": "animation_export",
}

__all__ = [
    "SinDDMAnimationPipeline",
    "SinDDMAnimationPipelineOutput",
    "SinDDMInpaintPipeline",
    "SinDDMPaintPipeline",
    "SinDDMSuperResolutionPipeline",
    "export_animation",
    "SinDDMCLIPPipeline",
    "SinDDMCLIPPipelineOutput",
    "SinDDMImg2ImgPipeline",
    "SinDDMModel",
    "SinDDMModelOutput",
    "SinDDMPatchDenoiser",
    "SinDDMPatchDenoiserOutput",
    "SinDDMPipeline",
    "SinDDMPyramid",
    "SinDDMScheduler",
    "SinDDMSchedulerOutput",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
