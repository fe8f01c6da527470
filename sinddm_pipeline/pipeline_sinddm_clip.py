"""SinDDMCLIPPipeline: text-guided generation and editing with a SinDDM model and CLIP (SPEC §7)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from PIL import Image
from transformers import CLIPModel, CLIPTokenizer

from .clip_guidance import (
    COARSE_TEMPLATES,
    FINE_TEMPLATES,
    CLIPGuide,
    compose_prompts,
    encode_prompts,
    normalized_step,
    thresholded_grad,
)
from .limits import check_output_size
from .modeling_patch_denoiser import SinDDMPatchDenoiser
from .modeling_pyramid import SinDDMPyramid
from .modeling_sinddm import SinDDMModel
from .pipeline_sinddm_base import SinDDMPipelineBase, StepGuidance
from .retargeting import Stage, plan_stages
from .roi import check_box
from .scheduling_sinddm import SinDDMScheduler

logger = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
"""The CLIP of the reference (ViT-B/32), loaded when `from_pretrained` is given no other."""

MODES = ("content", "style", "style_transfer", "roi")

ROI_CLIP_STEPS = 100
"""Gradient steps of a ROI text edit on the box's pixels."""
ROI_START_TIMESTEP = 3
"""A ROI text edit noises the edited image to this t and denoises t - 1 .. 0 at the finest scale."""


@dataclass(frozen=True)
class ModeSettings:
    """The constants of a text-guidance mode (the reference's ``main.py``).

    Args:
        strength: default gradient strength (relative step size).
        fill_factor: default fraction of the pixels that guidance may change (``None``: the ROI box).
        blend: lambda of the blend of the guided region with the previous step's guided estimate.
        stop_guidance: at the finest scale, no guidance for t < this (against CLIP-gradient artefacts).
        prompt_suffix: appended to the prompt.
    """

    strength: float
    fill_factor: float | None
    blend: float = 0.0
    stop_guidance: int = 0
    prompt_suffix: str = ""


MODE_SETTINGS = {
    "content": ModeSettings(strength=0.5, fill_factor=0.5, blend=0.2, stop_guidance=3),
    "style": ModeSettings(strength=0.3, fill_factor=1.0, blend=0.05, stop_guidance=4, prompt_suffix=" Style"),
    "style_transfer": ModeSettings(strength=0.3, fill_factor=1.0, blend=0.05, stop_guidance=4, prompt_suffix=" Style"),
    "roi": ModeSettings(strength=0.1, fill_factor=None),
}


@dataclass
class SinDDMCLIPPipelineOutput(ImagePipelineOutput):
    """Output of [`SinDDMCLIPPipeline`].

    Args:
        images: the results, as ``output_type`` says.
        masks: per image, where guidance acted, in [0, 1] at the output size: the pixels selected by the
            gradient-energy threshold (bilinearly up-sampled from the scale where it was made, so its edges are
            soft), or the ROI box. All zero where no guidance ran (``strength=0``). ``"pil"``: "L" images; ``"np"``:
            (N, H, W, 1) float32; ``"pt"``: (N, 1, H, W).
    """

    masks: list[Image.Image] | np.ndarray | torch.Tensor


def derived_generator(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``generator``'s current state, without drawing from it.

    The CLIP loss's random draws (augmentations, template subsets) come from it, so the diffusion noise is the same
    with guidance and without, and one seed still makes the whole call deterministic.

    >>> a = derived_generator(torch.Generator().manual_seed(0))
    >>> b = derived_generator(torch.Generator().manual_seed(0))
    >>> torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    True
    """
    state = generator.get_state().cpu().numpy().tobytes()
    digest = hashlib.sha256(b"sinddm-clip-guidance" + state).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def guidance_generators(
    generator: torch.Generator | list[torch.Generator] | None, batch_size: int
) -> list[torch.Generator]:
    """One generator per image for the CLIP loss: derived from each image's generator (a list), from the shared one
    (the same object for every image), or freshly seeded when ``generator`` is ``None``."""
    if isinstance(generator, list):
        return [derived_generator(g) for g in generator]
    if generator is None:
        fresh = torch.Generator()
        fresh.seed()
        return [fresh] * batch_size
    return [derived_generator(generator)] * batch_size


@dataclass
class TextGuidance:
    """What every text-guided step of one call uses: the prompt (with the mode's suffix), the gradient strength,
    CLIP's augmented views and one generator per image for their random draws (see [`guidance_generators`])."""

    prompt: str
    strength: float
    guide: CLIPGuide
    generators: list[torch.Generator]


def postprocess_masks(masks: torch.Tensor, output_type: str) -> list[Image.Image] | np.ndarray | torch.Tensor:
    """(N, 1, H, W) masks in [0, 1] to "pt" (as is), "np" ((N, H, W, 1) float32) or "pil" ("L" images)."""
    masks = masks.float().clamp(0, 1)
    if output_type == "pt":
        return masks
    array = masks.cpu().permute(0, 2, 3, 1).numpy()
    if output_type == "np":
        return array
    return DiffusionPipeline.numpy_to_pil(array)


def _check_unit_interval(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (or None for the mode's default), got {value!r}.")


class SinDDMCLIPPipeline(SinDDMPipelineBase):
    r"""Text-guided SinDDM with CLIP (SPEC §7): content, style generation, text style transfer and ROI text edits.

    Every mode samples with plain DDPM steps at all scales (no reblurring, as the reference's CLIP modes), and at
    the guided steps pushes the clean-image estimate x0 along CLIP's gradient towards the prompt:
    x0 += strength · (||x0·m|| / ||grad·m||) · grad · m, the mask m holding the pixels with the strongest gradient
    (a ``fill_factor`` fraction), made at the first guided step.

    - ``"content"`` ("fire in the forest"): guidance at every scale > 0; the mask is made at scale 1 and
      up-sampled; between steps the masked region blends with the previous guided estimate (lambda 0.2); no
      guidance for the last 3 steps. Defaults: strength 0.5, fill_factor 0.5.
    - ``"style"``: the prompt + " Style", guidance at the finest scale only (no guidance for its last 4 steps),
      blend 0.05. Defaults: strength 0.3, fill_factor 1 (the whole image).
    - ``"style_transfer"``: as ``"style"``, but starting from the training image (its second-finest scale,
      up-sampled and noised to the finest scale's start) instead of noise: the training image, restyled.
    - ``"roi"``: edit the ``roi_box`` of the training image: 100 CLIP steps on the box's pixels alone (strength 0.1,
      coarse-scale prompt templates), pasted back, then the whole image noised to t = 3 and denoised t = 2 .. 0 at
      the finest scale to blend the edit in.

    CLIP sees ``num_augmentations`` augmented views of each image (random crops, flips, affine and perspective
    warps, colour jitter, grayscale), resized to CLIP's input size on the short side with interpolated positional
    embeddings, so images of any aspect ratio work. The random draws of these views come from a generator derived
    from ``generator`` (see [`derived_generator`]), never from ``generator`` itself: with ``strength=0`` (no
    guidance at all) the images equal the unguided ones of the same generator.

    Components:
        denoiser ([`SinDDMModel`] or [`SinDDMPatchDenoiser`]): the noise predictor, trained or training-free.
        scheduler ([`SinDDMScheduler`]): the multi-scale diffusion process.
        pyramid ([`SinDDMPyramid`]): the training image at every scale (style transfer and ROI edits start from it).
        clip_model ([`~transformers.CLIPModel`]): frozen (eval mode, no gradients for its weights).
        tokenizer ([`~transformers.CLIPTokenizer`]): CLIP's tokenizer.

    Example:
        ```py
        >>> # needs CLIP (openai/clip-vit-base-patch32) from the Hub or a local folder, so the docstring test skips it
        >>> import torch
        >>> from sinddm_pipeline import SinDDMCLIPPipeline, SinDDMPipeline
        >>> pipe = SinDDMCLIPPipeline.from_pretrained("models/hubble-sinddm")  # doctest: +SKIP
        >>> # or, with any CLIP folder or repo id, offline from a local folder:
        >>> clip_folder = "/data/clip"  # a saved CLIPModel and its tokenizer
        >>> pipe = SinDDMCLIPPipeline.from_pretrained(
        ...     "models/hubble-sinddm", clip_model_name_or_path=clip_folder
        ... )  # doctest: +SKIP
        >>> # or from a loaded SinDDM pipeline (weights shared):
        >>> from transformers import CLIPModel, CLIPTokenizer
        >>> sinddm = SinDDMPipeline.from_pretrained("models/hubble-sinddm")
        >>> pipe = SinDDMCLIPPipeline.from_pipe(
        ...     sinddm,
        ...     clip_model=CLIPModel.from_pretrained("openai/clip-vit-base-patch32"),
        ...     tokenizer=CLIPTokenizer.from_pretrained("openai/clip-vit-base-patch32"),
        ... )  # doctest: +SKIP
        >>> out = pipe("fire in the sky", generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> out.images[0], out.masks[0]  # the image and where guidance acted  # doctest: +SKIP
        ```
    """

    model_cpu_offload_seq = "clip_model->denoiser"

    def __init__(
        self,
        denoiser: SinDDMModel | SinDDMPatchDenoiser,
        scheduler: SinDDMScheduler,
        pyramid: SinDDMPyramid,
        clip_model: CLIPModel,
        tokenizer: CLIPTokenizer,
    ):
        super().__init__(denoiser, scheduler, pyramid)
        clip_model.eval().requires_grad_(False)
        self.register_modules(clip_model=clip_model, tokenizer=tokenizer)

    # ----------------------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_pipe(cls, pipeline: DiffusionPipeline, **kwargs) -> DiffusionPipeline:
        """diffusers' `DiffusionPipeline.from_pipe`: the SinDDM components of ``pipeline`` (shared, not copied) plus
        ``clip_model=`` and ``tokenizer=`` given here, e.g.
        ``SinDDMCLIPPipeline.from_pipe(sinddm_pipe, clip_model=clip, tokenizer=tokenizer)``. Note that diffusers
        casts the models (CLIP included) to ``torch_dtype`` (float32 unless given)."""
        return super().from_pipe(pipeline, **kwargs)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path, clip_model_name_or_path: str | None = None, **kwargs
    ) -> SinDDMCLIPPipeline:
        """Load the SinDDM components from ``pretrained_model_name_or_path`` (a folder or Hub repo of any SinDDM
        pipeline) and CLIP from ``clip_model_name_or_path``: a Hub id or a local folder holding a saved
        ``CLIPModel`` and its tokenizer. Without it, CLIP comes from the pipeline folder when that holds one (a
        saved `SinDDMCLIPPipeline`), else from ``openai/clip-vit-base-patch32``. ``clip_model=`` and
        ``tokenizer=`` objects can be passed instead. Offline: pass a local folder (or set ``HF_HUB_OFFLINE=1`` to
        use the Hub cache). ``cache_dir``, ``local_files_only``, ``token`` and ``dtype`` apply to CLIP too.
        """
        if "clip_model" not in kwargs or "tokenizer" not in kwargs:
            hub_kwargs = {key: kwargs[key] for key in ("cache_dir", "local_files_only", "token") if key in kwargs}
            name = clip_model_name_or_path
            if name is None:
                config_kwargs = dict(hub_kwargs)
                if "revision" in kwargs:
                    config_kwargs["revision"] = kwargs["revision"]
                index = cls.load_config(pretrained_model_name_or_path, **config_kwargs)
                if "clip_model" not in index or "tokenizer" not in index:
                    name = DEFAULT_CLIP_MODEL
            if name is not None:
                try:
                    if "clip_model" not in kwargs:
                        clip_model = CLIPModel.from_pretrained(name, **hub_kwargs)
                        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
                        if dtype is not None:
                            clip_model = clip_model.to(dtype)
                        kwargs["clip_model"] = clip_model
                    kwargs.setdefault("tokenizer", CLIPTokenizer.from_pretrained(name, **hub_kwargs))
                except OSError as error:
                    raise OSError(
                        f"Could not load CLIP (CLIPModel and CLIPTokenizer) from {name!r}: {error}\nPass "
                        "clip_model_name_or_path= a Hub id or a local folder holding both (offline: a local folder, "
                        "or HF_HUB_OFFLINE=1 with the model in the Hub cache)."
                    ) from error
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------------------------------------------------
    # inputs

    def check_inputs(
        self,
        prompt: str,
        mode: str,
        strength: float | None,
        fill_factor: float | None,
        roi_box: Sequence[int] | None,
        batch_size: int,
        height_scale: float,
        width_scale: float,
        num_augmentations: int,
        generator: torch.Generator | list[torch.Generator] | None,
        output_type: str,
    ) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty string (what the image should show), got {prompt!r}.")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        _check_unit_interval("strength", strength)
        _check_unit_interval("fill_factor", fill_factor)
        self.check_call_inputs(batch_size, output_type, generator)
        if isinstance(num_augmentations, bool) or not isinstance(num_augmentations, int) or num_augmentations < 1:
            raise ValueError(
                f"num_augmentations must be an int >= 1 (the reference uses 16), got {num_augmentations!r}."
            )
        if mode == "roi":
            if roi_box is None:
                raise ValueError("mode 'roi' needs roi_box=(y, x, h, w): the region of the training image to edit.")
            height, width = self.scheduler.config.scale_sizes[-1]
            check_box(roi_box, "roi_box", height=height, width=width)
            if fill_factor is not None:
                raise ValueError(
                    "fill_factor does not apply to mode 'roi' (the box is the edited region); leave it None."
                )
            if height_scale != 1.0 or width_scale != 1.0:
                raise ValueError(
                    "mode 'roi' edits the training image at its size: height_scale and width_scale must be 1."
                )
        elif roi_box is not None:
            raise ValueError(f"roi_box applies to mode 'roi' only, not to mode {mode!r}.")
        if mode == "style_transfer" and self.scheduler.num_scales < 2:
            raise ValueError("mode 'style_transfer' starts from the second-finest scale: the model needs >= 2 scales.")

    # ----------------------------------------------------------------------------------------------------------
    # guidance

    def text_embeddings(self, prompt: str, templates: Sequence[str]) -> torch.Tensor:
        """CLIP embeddings of the prompt in every template, (len(templates), projection_dim)."""
        return encode_prompts(self.clip_model, self.tokenizer, compose_prompts(prompt, templates))

    def guide_estimate(
        self,
        estimate: torch.Tensor,
        text: TextGuidance,
        text_embeddings: torch.Tensor,
        fill_factor: float,
        blend: float,
        mask: torch.Tensor | None,
        previous: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One guided clean-image estimate (SPEC §7). Returns (guided estimate, mask).

        ``estimate`` is clamped; where a mask exists its region is first blended with the previous guided estimate,
        (1 - blend) · previous + blend · estimate; then one normalised CLIP gradient step inside the mask. Without a
        mask (the first guided step) the mask is made from this gradient's energy (its ``fill_factor`` strongest
        pixels) and the step uses the soft-thresholded gradient.
        """
        estimate = estimate.clamp(-1.0, 1.0)
        if mask is not None:
            estimate = estimate * (1 - mask) + ((1 - blend) * previous + blend * estimate) * mask
        grad, _ = text.guide.gradient(estimate, text_embeddings, text.generators)
        grad = grad.to(estimate.dtype)
        if mask is None:
            grad, selected = thresholded_grad(grad, quantile=1.0 - fill_factor)
            mask = selected.to(estimate.dtype)
        return normalized_step(estimate, grad, text.strength, mask), mask

    # ----------------------------------------------------------------------------------------------------------
    # sampling

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        mode: str = "content",
        strength: float | None = None,
        fill_factor: float | None = None,
        roi_box: Sequence[int] | None = None,
        batch_size: int = 1,
        height_scale: float = 1.0,
        width_scale: float = 1.0,
        num_augmentations: int = 16,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> SinDDMCLIPPipelineOutput | tuple:
        r"""Generate or edit images as the prompt says.

        Args:
            prompt (`str`): what the image should show, e.g. "fire in the forest" (content) or "Van Gogh" (style).
            mode (`str`, defaults to `"content"`): `"content"`, `"style"`, `"style_transfer"` or `"roi"`; see the
                class docstring.
            strength (`float` in [0, 1], *optional*): the gradient step, relative to the image's norm. Defaults per
                mode: 0.5 content, 0.3 style and style_transfer, 0.1 roi. 0 turns guidance off (no CLIP at all).
            fill_factor (`float` in [0, 1], *optional*): the fraction of the pixels guidance may change (those
                with the strongest CLIP gradient). Defaults: 0.5 content, 1 style and style_transfer; not for roi.
            roi_box (`(y, x, h, w)`, mode `"roi"` only): the region of the training image (finest scale, pixels:
                top row, left column, height, width) to edit.
            batch_size (`int`, defaults to 1): how many images.
            height_scale, width_scale (`float`, defaults to 1.0): retargeting factors (not for roi).
            num_augmentations (`int`, defaults to 16): augmented views of each image per CLIP loss.
            generator (`torch.Generator` or one per image): makes the result deterministic; the CLIP views draw from
                a generator derived from it, so its own draws are those of unguided sampling.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (NHWC in [0, 1]) or `"pt"` (NCHW in [0, 1]).
            return_dict (`bool`, defaults to `True`): return a [`SinDDMCLIPPipelineOutput`], else a tuple
                ``(images, masks)``.
            callback_on_step_end (`Callable`, *optional*): diffusers' step callback, called after every denoising
                step as ``callback_on_step_end(pipe, step_index, timestep, {"sample": sample})``; a returned
                ``{"sample": ...}`` replaces the sample.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): the names passed (default ``["sample"]``).

        Returns:
            [`SinDDMCLIPPipelineOutput`] or `tuple`: the images and the guidance masks.

        Example:
            ```py
            >>> # needs CLIP from the Hub (or clip_model_name_or_path= a local folder): the docstring test skips it
            >>> pipe = SinDDMCLIPPipeline.from_pretrained("models/hubble-sinddm")  # doctest: +SKIP
            >>> fire = pipe("fire in the sky", fill_factor=0.3).images[0]  # doctest: +SKIP
            >>> vangogh = pipe("Van Gogh", mode="style").images[0]  # doctest: +SKIP
            >>> restyled = pipe("Van Gogh", mode="style_transfer").images[0]  # doctest: +SKIP
            >>> edited = pipe("a red balloon", mode="roi", roi_box=(40, 60, 50, 50)).images[0]  # doctest: +SKIP
            ```
        """
        self.check_inputs(
            prompt,
            mode,
            strength,
            fill_factor,
            roi_box,
            batch_size,
            height_scale,
            width_scale,
            num_augmentations,
            generator,
            output_type,
        )
        settings = MODE_SETTINGS[mode]
        strength = float(settings.strength if strength is None else strength)
        prompt = prompt + settings.prompt_suffix
        text = TextGuidance(
            prompt, strength, CLIPGuide(self.clip_model, num_augmentations), guidance_generators(generator, batch_size)
        )

        with self.step_callback(callback_on_step_end, callback_on_step_end_tensor_inputs):
            if mode == "roi":
                sample, mask = self.edit_roi(text, tuple(roi_box), batch_size, generator)
            else:
                fill_factor = float(settings.fill_factor if fill_factor is None else fill_factor)
                stages = plan_stages(
                    self.scheduler.config.scale_sizes, self.scheduler.config.scale_factor, height_scale, width_scale
                )
                check_output_size(batch_size, *stages[-1].size)
                sample, mask = self.generate(text, mode, fill_factor, stages, batch_size, generator)

        images = self.finish(sample, output_type)
        masks = postprocess_masks(mask, output_type)
        if not return_dict:
            return (images, masks)
        return SinDDMCLIPPipelineOutput(images=images, masks=masks)

    def guided_scales(self, mode: str) -> list[int]:
        """The scales with CLIP guidance: every scale > 0 for content, the finest for the style modes."""
        num_scales = self.scheduler.num_scales
        if mode == "content":
            return list(range(1, num_scales))
        return [num_scales - 1]

    def generate(
        self,
        text: TextGuidance,
        mode: str,
        fill_factor: float,
        stages: list[Stage],
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Content, style and style-transfer sampling, coarse to fine. Returns (images in [-1, 1], masks)."""
        settings = MODE_SETTINGS[mode]
        finest = self.scheduler.num_scales - 1
        guided = set(self.guided_scales(mode)) if text.strength > 0 else set()
        if not guided and text.strength > 0:
            logger.warning("This model has a single scale: content guidance acts at scales > 0 only, so it is off.")
        embeddings = {}
        if any(scale > 0 for scale in guided):
            embeddings["fine"] = self.text_embeddings(text.prompt, FINE_TEMPLATES)
        if 0 in guided:
            embeddings["coarse"] = self.text_embeddings(text.prompt, COARSE_TEMPLATES)

        if mode == "style_transfer":
            # the training image at the second-finest scale stands in for the generated coarser scales
            stages = stages[-1:]
            sample, _ = self.renoise(self.training_image(finest - 1, batch_size), stages[0], generator)
        else:
            sample = self.start_sample((batch_size, 3, *stages[0].size), generator)

        state: dict[str, torch.Tensor | None] = {"mask": None, "previous": None}

        def guidance(index: int, stage: Stage) -> StepGuidance | None:
            if stage.scale not in guided:
                return None
            stage_embeddings = embeddings["fine" if stage.scale > 0 else "coarse"]

            def edit(estimate: torch.Tensor, t: int) -> torch.Tensor | None:
                if stage.scale == finest and t < settings.stop_guidance:
                    return None
                mask, previous = state["mask"], state["previous"]
                if mask is not None and mask.shape[-2:] != estimate.shape[-2:]:  # made at a coarser stage
                    mask = F.interpolate(mask, size=stage.size, mode="bilinear", align_corners=False)
                    previous = F.interpolate(previous, size=stage.size, mode="bilinear", align_corners=False)
                estimate, mask = self.guide_estimate(
                    estimate, text, stage_embeddings, fill_factor, settings.blend, mask, previous
                )
                state.update(mask=mask, previous=estimate)
                return estimate

            return self.estimate_guidance(edit, stage.scale, reblurring=False)

        total = self._num_timesteps = sum(self.scheduler.start_timesteps[stage.scale] for stage in stages)
        with self.progress_bar(total=total) as progress_bar:
            sample = self.denoise_stages(
                sample, stages, generator=generator, reblurring=False, guidance=guidance, progress_bar=progress_bar
            )

        mask = state["mask"]
        if mask is None:
            return sample, torch.zeros_like(sample[:, :1])
        if mask.shape[-2:] != sample.shape[-2:]:  # made at a coarser stage, the finer ones unguided
            mask = F.interpolate(mask, size=sample.shape[-2:], mode="bilinear", align_corners=False)
        return sample, mask

    def edit_roi(
        self,
        text: TextGuidance,
        box: tuple[int, int, int, int],
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ROI text edit of the finest training image. Returns (images in [-1, 1], masks: the box)."""
        finest = self.scheduler.num_scales - 1
        y, x, h, w = box
        image = self.training_image(finest, batch_size)
        mask = torch.zeros_like(image[:, :1])
        mask[..., y : y + h, x : x + w] = 1.0
        start_timestep = self._num_timesteps = min(ROI_START_TIMESTEP, self.scheduler.config.num_train_timesteps)

        with self.progress_bar(total=(ROI_CLIP_STEPS if text.strength > 0 else 0) + start_timestep) as progress_bar:
            if text.strength > 0:
                embeddings = self.text_embeddings(text.prompt, COARSE_TEMPLATES)
                region = image[..., y : y + h, x : x + w]
                for _ in range(ROI_CLIP_STEPS):
                    grad, _ = text.guide.gradient(region, embeddings, text.generators)
                    region = normalized_step(region, grad.to(region.dtype), text.strength)
                    progress_bar.update()
                image[..., y : y + h, x : x + w] = region

            sample = self.denoise_stage(
                self.noised(image, start_timestep, generator),
                finest,
                generator=generator,
                start_timestep=start_timestep,
                reblurring=False,
                progress_bar=progress_bar,
            )
        return sample, mask
