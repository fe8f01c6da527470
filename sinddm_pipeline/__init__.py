"""SinDDM (ICML 2023) as Hugging Face diffusers components: train on one image, generate endless variations."""

from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel, SinDDMModelOutput
from .pipeline_sinddm import SinDDMPipeline
from .pipeline_sinddm_img2img import SinDDMImg2ImgPipeline
from .scheduling_sinddm import SinDDMScheduler, SinDDMSchedulerOutput

__version__ = "0.1.0"

__all__ = [
    "SinDDMImg2ImgPipeline",
    "SinDDMModel",
    "SinDDMModelOutput",
    "SinDDMPipeline",
    "SinDDMPyramid",
    "SinDDMScheduler",
    "SinDDMSchedulerOutput",
]
