"""SinDDMPatchDenoiser: a training-free denoiser for SinDDM, the closed-form posterior mean of the image's patches.

Plugs into every SinDDM pipeline in place of the trained [`SinDDMModel`]: same call (noisy sample, timestep,
scale -> predicted noise), built from the training image's pyramid and the scheduler's schedules, with no learned
weights. See `SinDDMPatchDenoiser` for the maths and `sinddm_pipeline.patch_posterior` for the computation.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from .patch_posterior import DEFAULT_CHUNK_SIZE, ReferencePatches, posterior_mean_image
from .scheduling_sinddm import SinDDMScheduler

logger = logging.getLogger(__name__)

SEARCH_MODES = ("candidates", "exact")
SCHEDULE_KEYS = ("scale_sizes", "rescale_losses", "num_train_timesteps", "cosine_s", "max_sampling_gamma")
"""The scheduler config entries the denoiser's posterior depends on (checked against the pipeline's scheduler)."""

# measured on balloons (docs/REPRODUCTION.md §5): large coarse patches keep the layout's objects whole; a small
# tau ties fine detail to the coarse layout (sharper, closer patch statistics); a narrow window is nearly the
# centre pixel of each patch, so overlapping copies blur less
COARSEST_PATCH_SIZE = 19
FINE_PATCH_SIZE = 9
DEFAULT_GUIDE_NOISE = 0.01
DEFAULT_WINDOW_RHO = 0.05


@dataclass
class SinDDMPatchDenoiserOutput(BaseOutput):
    """Output of [`SinDDMPatchDenoiser`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, 3, height, width)`): the predicted noise.
    """

    sample: torch.Tensor


def _per_scale(name: str, value, num_scales: int, default: list, check) -> list:
    """``value`` as one entry per scale: ``None`` -> ``default``, a single value -> repeated, a list -> checked."""
    values = default if value is None else value
    if not isinstance(values, (list, tuple)):
        values = [values] * num_scales
    values = list(values)
    if len(values) != num_scales or not all(check(v) for v in values):
        raise ValueError(f"{name} must be one value or a list of {num_scales} (one per scale), got {value!r}.")
    return values


def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


class SinDDMPatchDenoiser(ModelMixin, ConfigMixin):
    r"""The optimal (MMSE) denoiser of SinDDM's forward process when the clean data are the training image's patches.

    No training: at every scale the data set is the set of ``P x P`` patches of that scale's training image
    (finite, so its posterior mean has a closed form), and the noise prediction follows from it (Tweedie). The idea
    is the CVPR 2026 paper "Efficient and Training-Free Single-Image Diffusion Models" (Qiu, Kutulakos, Lindell);
    this implementation derives the posterior for SinDDM's own blur + noise process, so it plugs into the SinDDM
    scheduler and pipelines unchanged.

    **The posterior mean at scale 0.** The forward process is x_t = a·x + s·eps with a = sqrt(alphā_t),
    s = sqrt(1 - alphā_t). Every patch y of x_t is a·p + s·eps_p with p uniform over the reference patches
    {p_k}, so z = y / a = p + sigma·eps_p with sigma = s / a and

        E[p | y] = sum_k w_k p_k,   w = softmax_k( -||z - p_k||^2 / (2 sigma^2) ).

    **At scales i > 0** the clean image is blur-mixed first: x_t = a·(g·b + (1 - g)·x) + s·eps, with b the blurry
    image (at sampling time the up-sampled output of scale i - 1, given to the call as ``blurry_sample``) and
    g = gamma_i(t) the scheduler's *sampling* blur weight (clamped to ``max_sampling_gamma``, the weight the
    reblurring step inverts: with it the scheduler's deblurred estimate is exactly x_hat below). b is known, so
    y = x_t - a·g·b = a(1 - g)·x + s·eps has the scale-0 form with a' = a(1 - g): z = y / a', sigma = s / a'. The
    reference set holds pairs: each sharp patch p_k of scale i with the patch q_k at the same place of the
    training image's blurry image (scale i - 1 bilinearly up-sampled, as sampling makes b). The patch of b at the
    query's place observes q_k with noise ``guide_noise`` (tau), which ties the new detail to the coarse layout:

        w = softmax_k( -||z - p_k||^2 / (2 sigma^2) - ||b_patch - q_k||^2 / (2 tau^2) ).

    Without ``blurry_sample`` (or ``guide_noise=None``) the blur term and the guide term are dropped (g = 0): the
    plain posterior of the sharp patches, which is what the image-guided pipelines want (they turn the blur mix off).

    **Putting the image together.** Every patch of the (zero-padded) noisy image gets its posterior mean; each
    pixel's estimate x_hat is the average of the estimates of the patches that cover it, weighted by a Gaussian
    window (``window_rho``) centred on each patch. Patches at the image border only match reference patches that
    overhang the border in the same way (the padding is known exactly), so borders look like the training image's.

    **The noise prediction** the scheduler expects is Tweedie's: eps_hat = (x_t - a·(g·b + (1 - g)·x_hat)) / s.

    **Exact and fast.** ``search="exact"``, ``query_strides`` of 1 and no ``window_cutoff`` compute exactly the sums
    above.
    ``search="candidates"`` (an approximation, at scales > 0; scale 0 is small and always exact) compares each
    query only with the references of a few k-means clusters of the guide patches (the sharp patches where there is
    no guide) nearest to its own, in a PCA space;
    ``query_strides`` > 1 (an approximation) takes query patches on a grid of that stride; ``window_cutoff`` (an
    approximation) computes only the pixels of each patch's estimate that the window does not all but zero.
    benchmarks/RESULTS.md measures them against the exact path.

    Args:
        scale_sizes (`list[list[int]]`): (height, width) of every scale, coarsest first (the scheduler's).
        rescale_losses, num_train_timesteps, cosine_s, max_sampling_gamma: the scheduler's schedule
            (copied from it by `from_pyramid`; pipelines refuse a scheduler with another schedule).
        patch_sizes (`int` or `list[int]`): patch side P per scale (default 19 at the coarsest, 9 above).
        paddings (`int` or `list[int]`): zero padding per scale, in [0, P) (default P // 2: every pixel is the centre
            of a patch).
        guide_noise (`float` or `None`, defaults to 0.01): tau, the noise level at which the blurry image's patch
            observes the reference's blurry patch at scales > 0; `None` drops the guide term.
        window_rho (`float` or `None`, defaults to 0.05): width of the Gaussian window over a patch (u, v in
            [-1, 1]); `None` weights every pixel of a patch alike.
        window_cutoff (`float` or `None`, defaults to `None`): an approximation; the pixels of a patch where the
            window is below this fraction of its peak are left out of the average, so only the rest of each
            posterior mean is computed (1e-6 with the default window: the 3 x 3 pixels around the centre, an error
            below 1e-5 measured against `None`, which keeps every pixel).
        query_strides (`int` or `list[int]`): stride of the query grid per scale (1: every patch, exact).
        search (`str`, defaults to `"candidates"`): `"candidates"` (fast) or `"exact"` (every reference).
        num_probes (`int`, defaults to 4): clusters whose references are a query's candidates.
        search_dims (`int`, defaults to 16): dimensions of the PCA space of the candidate search.
        num_inference_steps (`list[int]`, *optional*): the steps per scale pipelines use with this denoiser when
            their call gives none (`None`: every step).

    Example:
        ```py
        >>> import torch
        >>> from PIL import Image
        >>> from sinddm_pipeline import SinDDMPatchDenoiser, SinDDMPyramid, SinDDMScheduler
        >>> from sinddm_pipeline.pyramid import build_pyramid
        >>> pyramid = build_pyramid(Image.radial_gradient("L").convert("RGB").resize((96, 72)))
        >>> scheduler = SinDDMScheduler.from_pyramid(pyramid)
        >>> denoiser = SinDDMPatchDenoiser.from_pyramid(SinDDMPyramid.from_pyramid(pyramid), scheduler)
        >>> noise = denoiser(torch.randn(1, 3, 48, 64), timestep=50, scale=0).sample
        >>> noise.shape
        torch.Size([1, 3, 48, 64])
        ```
    """

    conditions_on_blurry_sample = True
    """Pipelines pass this denoiser the blurry image of scales > 0 (``blurry_sample``)."""

    wraps_around = False
    """Whether calls treat the image as a torus (inside `circular_padding`)."""

    @register_to_config
    def __init__(
        self,
        scale_sizes: list[list[int]] | None = None,
        rescale_losses: list[float] | None = None,
        num_train_timesteps: int = 100,
        cosine_s: float = 0.008,
        max_sampling_gamma: float = 0.55,
        patch_sizes: int | list[int] | None = None,
        paddings: int | list[int] | None = None,
        guide_noise: float | None = DEFAULT_GUIDE_NOISE,
        window_rho: float | None = DEFAULT_WINDOW_RHO,
        window_cutoff: float | None = None,
        query_strides: int | list[int] | None = None,
        search: str = "candidates",
        num_probes: int = 4,
        search_dims: int = 16,
        num_inference_steps: list[int] | None = None,
    ):
        super().__init__()
        self.schedule = SinDDMScheduler(
            scale_sizes=scale_sizes,
            rescale_losses=rescale_losses,
            num_train_timesteps=num_train_timesteps,
            cosine_s=cosine_s,
            max_sampling_gamma=max_sampling_gamma,
        )
        n = self.schedule.num_scales
        sizes = _per_scale(
            "patch_sizes", patch_sizes, n, [COARSEST_PATCH_SIZE] + [FINE_PATCH_SIZE] * (n - 1), lambda v: _is_int(v, 1)
        )
        pads = _per_scale("paddings", paddings, n, [size // 2 for size in sizes], lambda v: _is_int(v, 0))
        strides = _per_scale("query_strides", query_strides, n, [1] * n, lambda v: _is_int(v, 1))
        settings = zip(scale_sizes, sizes, pads, strides, strict=True)
        for index, ((height, width), size, pad, stride) in enumerate(settings):
            if pad >= size or stride > size or size > min(height, width) + 2 * pad:
                raise ValueError(
                    f"scale {index} ({width}x{height} px): need padding < patch size, query stride <= patch size and "
                    f"a patch no larger than the padded image; got patch {size}, padding {pad}, stride {stride}."
                )
        for name, value in (("guide_noise", guide_noise), ("window_rho", window_rho)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"{name} must be a number > 0 or None, got {value!r}.")
        if window_cutoff is not None and (
            isinstance(window_cutoff, bool) or not isinstance(window_cutoff, (int, float)) or not 0 <= window_cutoff < 1
        ):
            raise ValueError(f"window_cutoff must be a number in [0, 1) or None, got {window_cutoff!r}.")
        if search not in SEARCH_MODES:
            raise ValueError(f"search must be one of {SEARCH_MODES}, got {search!r}.")
        if not _is_int(num_probes, 1) or not _is_int(search_dims, 1):
            raise ValueError(f"num_probes and search_dims must be ints >= 1, got {num_probes!r}, {search_dims!r}.")
        if num_inference_steps is not None:
            _per_scale("num_inference_steps", list(num_inference_steps), n, None, lambda v: _is_int(v, 2))
        self.register_to_config(patch_sizes=sizes, paddings=pads, query_strides=strides)
        # the training image at every scale and the blurry images of scales > 0: not saved (the pipeline's pyramid
        # holds them), filled by `set_pyramid`
        for index, (height, width) in enumerate(scale_sizes):
            self.register_buffer(f"image_{index}", torch.zeros(1, 3, height, width), persistent=False)
        self.has_pyramid = False
        self._references: dict[tuple, ReferencePatches] = {}

    # ----------------------------------------------------------------------------------------------------------
    # construction and loading

    @classmethod
    def from_pyramid(cls, pyramid, scheduler: SinDDMScheduler, **options) -> SinDDMPatchDenoiser:
        """The denoiser of a [`SinDDMPyramid`] with ``scheduler``'s schedule; ``options`` as in the constructor."""
        schedule = {key: scheduler.config[key] for key in SCHEDULE_KEYS}
        denoiser = cls(**schedule, **options)
        denoiser.set_pyramid(pyramid)
        return denoiser

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, subfolder: str | None = None, **kwargs
    ) -> SinDDMPatchDenoiser:
        """Load the config (there are no weights; the training images come from the pipeline's pyramid, which
        the pipeline attaches with `set_pyramid`). Hub arguments (``cache_dir``, ``revision``, ``token``,
        ``local_files_only``, ...) are passed on; loading options for weights (``torch_dtype``, ...) are ignored."""
        hub_keys = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")
        config = cls.load_config(
            pretrained_model_name_or_path, subfolder=subfolder, **{k: kwargs[k] for k in hub_keys if k in kwargs}
        )
        return cls.from_config(config)

    def set_pyramid(self, pyramid) -> None:
        """Take the training image of every scale from a [`SinDDMPyramid`] (the one the pipeline holds)."""
        if [list(size) for size in pyramid.config.scale_sizes] != self.config.scale_sizes:
            raise ValueError(
                f"The pyramid's scales {pyramid.config.scale_sizes} differ from the denoiser's "
                f"{self.config.scale_sizes}."
            )
        with torch.no_grad():
            images = [getattr(self, f"image_{index}") for index in range(self.schedule.num_scales)]
            new = [pyramid.image(i).to(device=image.device, dtype=image.dtype) for i, image in enumerate(images)]
            if self.has_pyramid and all(torch.equal(a, b) for a, b in zip(images, new, strict=True)):
                return  # the same images (every pipeline built on these components): keep the built references
            for image, value in zip(images, new, strict=True):
                image.copy_(value)
        self.has_pyramid = True
        self._references.clear()

    def check_schedule(self, scheduler: SinDDMScheduler) -> None:
        """Refuse a scheduler whose schedule differs from the one this denoiser's posterior assumes."""
        different = [key for key in SCHEDULE_KEYS if scheduler.config[key] != self.config[key]]
        if different:
            raise ValueError(
                "The scheduler's schedule differs from the patch denoiser's in "
                + ", ".join(f"{key} ({scheduler.config[key]!r} vs {self.config[key]!r})" for key in different)
                + "; build the denoiser from this scheduler (SinDDMPatchDenoiser.from_pyramid)."
            )

    # ----------------------------------------------------------------------------------------------------------
    # the reference sets

    def _compute_dtype(self) -> torch.dtype:
        dtype = self.image_0.dtype
        return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype

    def reference(self, scale: int, guided: bool) -> ReferencePatches:
        """The reference set of ``scale`` (with guides when ``guided``), built on first use and cached per device
        and dtype; with ``search="candidates"`` the sets of scales > 0 carry a candidate index (scale 0 is always
        exact: it is the smallest, and it starts from pure noise, where no candidate search can work)."""
        device, dtype = self.image_0.device, self._compute_dtype()
        key = (scale, guided, device, dtype)
        if key not in self._references:
            # sets built for another device or dtype (before a .to()) are not used again
            for stale in [k for k in self._references if k[2:] != (device, dtype)]:
                del self._references[stale]
            image = getattr(self, f"image_{scale}").to(dtype)
            guide = None
            if guided:
                previous = getattr(self, f"image_{scale - 1}").to(dtype)
                guide = F.interpolate(previous, size=image.shape[-2:], mode="bilinear", align_corners=False)
            config = self.config
            reference = ReferencePatches.from_image(image, config.patch_sizes[scale], config.paddings[scale], guide)
            if config.search == "candidates" and scale > 0:
                reference = reference.with_index(num_probes=config.num_probes, dims=config.search_dims)
                reference = reference.to(device, dtype)
            self._references[key] = reference
        return self._references[key]

    def prepare(self) -> None:
        """Build every scale's reference set now (else each is built on its first use)."""
        for scale in range(self.schedule.num_scales):
            self.reference(scale, guided=scale > 0 and self.config.guide_noise is not None)

    @contextlib.contextmanager
    def circular_padding(self) -> Iterator[SinDDMPatchDenoiser]:
        """Within this block calls treat the image as a torus: every query patch is cut from the image padded with
        its own opposite borders, so all are interior patches (matched with the reference's interior patches), and
        the estimate continues across the borders; the output tiles without seams. See
        `~sinddm_pipeline.patch_posterior.posterior_mean_image` (``circular``).

        Example:
            >>> import torch
            >>> from PIL import Image
            >>> from sinddm_pipeline import SinDDMPyramid, SinDDMScheduler
            >>> from sinddm_pipeline.pyramid import build_pyramid
            >>> pyramid = build_pyramid(Image.radial_gradient("L").convert("RGB").resize((96, 72)))
            >>> scheduler = SinDDMScheduler.from_pyramid(pyramid)
            >>> denoiser = SinDDMPatchDenoiser.from_pyramid(SinDDMPyramid.from_pyramid(pyramid), scheduler)
            >>> x = torch.randn(1, 3, 24, 32)
            >>> with denoiser.circular_padding():
            ...     shifted = denoiser(x.roll(7, dims=-1), timestep=50, scale=0).sample
            ...     same = denoiser(x, timestep=50, scale=0).sample.roll(7, dims=-1)
            >>> bool(torch.allclose(shifted, same, atol=1e-4))  # a torus has no borders: shifts commute
            True
        """
        previous, self.wraps_around = self.wraps_around, True
        try:
            yield self
        finally:
            self.wraps_around = previous

    # ----------------------------------------------------------------------------------------------------------
    # the call

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        scale: torch.Tensor | int,
        blurry_sample: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SinDDMPatchDenoiserOutput | tuple[torch.Tensor]:
        """Predict the noise of ``sample`` (x_t at ``timestep`` and ``scale``).

        Args:
            sample: noisy images (batch, 3, height, width), any height and width.
            timestep: an int, or a tensor of shape () or (batch,) (several timesteps are handled one at a time).
            scale: the pyramid scale (0 = coarsest), an int or a tensor holding one value.
            blurry_sample: at scales > 0, the blurry image of the forward process (the up-sampled previous scale),
                same shape as ``sample``; without it the blur mix is taken as off (g = 0).
            return_dict: return a [`SinDDMPatchDenoiserOutput`] instead of a tuple.
        """
        if not self.has_pyramid:
            raise ValueError(
                "This SinDDMPatchDenoiser has no training images yet: call set_pyramid(pyramid), or load it as part "
                "of a pipeline (SinDDMPipeline.from_pretrained / from_image), which attaches the pipeline's pyramid."
            )
        scale = int(scale.reshape(-1)[0]) if isinstance(scale, torch.Tensor) else int(scale)
        if not 0 <= scale < self.schedule.num_scales:
            raise ValueError(f"scale must be in [0, {self.schedule.num_scales - 1}], got {scale}.")
        if blurry_sample is not None and blurry_sample.shape != sample.shape:
            raise ValueError(f"blurry_sample has shape {tuple(blurry_sample.shape)}, sample {tuple(sample.shape)}.")
        timesteps = timestep.reshape(-1).tolist() if isinstance(timestep, torch.Tensor) else [int(timestep)]
        if len(set(timesteps)) > 1:
            if len(timesteps) != sample.shape[0]:
                raise ValueError(f"got {len(timesteps)} timesteps for a batch of {sample.shape[0]}.")
            parts = [
                self.predict(
                    sample[i : i + 1], int(t), scale, None if blurry_sample is None else blurry_sample[i : i + 1]
                )
                for i, t in enumerate(timesteps)
            ]
            noise = torch.cat(parts)
        else:
            noise = self.predict(sample, int(timesteps[0]), scale, blurry_sample)
        if not return_dict:
            return (noise,)
        return SinDDMPatchDenoiserOutput(sample=noise)

    def predict(
        self, sample: torch.Tensor, timestep: int, scale: int, blurry_sample: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The noise prediction eps_hat for one timestep (see the class docstring for the maths)."""
        if not 0 <= timestep < self.config.num_train_timesteps:
            raise ValueError(f"timestep must be in [0, {self.config.num_train_timesteps - 1}], got {timestep}.")
        dtype = self._compute_dtype()
        x_t = sample.to(dtype)
        a = float(self.schedule.sqrt_alphas_cumprod[timestep])
        s = float(self.schedule.sqrt_one_minus_alphas_cumprod[timestep])
        guided = scale > 0 and blurry_sample is not None
        g = self.schedule.gamma(scale, timestep) if guided else 0.0
        blurry = blurry_sample.to(dtype) if guided else None
        y = x_t - (a * g) * blurry if guided else x_t
        a_prime = a * (1.0 - g)
        use_guide = guided and self.config.guide_noise is not None
        reference = self.reference(scale, guided=use_guide)
        stride = self.config.query_strides[scale]
        x_hat = posterior_mean_image(
            y / a_prime,
            s / a_prime,
            reference,
            guide=blurry if use_guide else None,
            tau=self.config.guide_noise if use_guide else None,
            stride=stride,
            offset=(timestep % stride, (timestep // stride) % stride),
            rho=self.config.window_rho,
            chunk_size=DEFAULT_CHUNK_SIZE,
            window_cutoff=self.config.window_cutoff,
            circular=self.wraps_around,
        )
        # eps_hat = (x_t - a·(g·b + (1 - g)·x_hat)) / s = (y - a'·x_hat) / s
        return ((y - a_prime * x_hat) / s).to(sample.dtype)

    def __repr__(self) -> str:
        config = self.config
        return (
            f"SinDDMPatchDenoiser(scales={len(config.scale_sizes)}, patch_sizes={config.patch_sizes}, "
            f"search={config.search!r}, query_strides={config.query_strides})"
        )


def is_patch_denoiser(denoiser) -> bool:
    """Whether ``denoiser`` is the training-free [`SinDDMPatchDenoiser`]."""
    return isinstance(denoiser, SinDDMPatchDenoiser)
