"""SinDDMScheduler: the multi-scale blur + noise diffusion process of SinDDM (SPEC §2, §4, §5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .limits import MAX_TRAIN_TIMESTEPS, check_count, check_scale_sizes
from .pyramid import Pyramid


@dataclass
class SinDDMSchedulerOutput(BaseOutput):
    """Output of [`SinDDMScheduler.step`].

    Args:
        prev_sample (`torch.Tensor`): the sample at the previous timestep, x_{t-1}; the next model input.
        pred_original_sample (`torch.Tensor`): the clean-image estimate of this step (at scales > 0 with
            reblurring: the deblurred estimate).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def cosine_alphas_cumprod(num_timesteps: int, s: float = 0.008) -> np.ndarray:
    """alphā_t (float64) of the cosine schedule, via betas clipped to [0, 0.999] as the reference does."""
    steps = num_timesteps + 1
    x = np.linspace(0, steps, steps)
    alphas_cumprod = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = np.clip(1 - (alphas_cumprod[1:] / alphas_cumprod[:-1]), 0, 0.999)
    return np.cumprod(1.0 - betas, axis=0)


class SinDDMScheduler(SchedulerMixin, ConfigMixin):
    r"""The multi-scale diffusion process of SinDDM.

    Scale 0 (the coarsest) is a plain DDPM with a cosine schedule. At a scale i > 0 the clean image is a mix of the
    training image and its blurry version (the previous scale up-sampled), with the blur weight
    gamma_i(t) = clamp(sigma_t / L_i, 0, 1), where sigma_t = sqrt(1 - alphā_t) / sqrt(alphā_t) and L_i is the
    scale's rescale loss. Sampling at scale i starts from the blurry image noised to t_i, the first t with
    sigma_t > L_i, and runs t_i - 1 .. 0 with the "reblurring" step. Every schedule array is computed in float64
    and stored as float32, like the reference.

    The config holds everything the schedule derives from (scale sizes, scale factor, rescale losses), so a
    saved pipeline is complete without the training image.

    Args:
        scale_sizes (`list[list[int]]`): (height, width) of every pyramid scale, coarsest first.
        rescale_losses (`list[float]`): L_i of the scales i > 0 (one fewer than the scales).
        scale_factor (`float`, defaults to 1.411): the factor r between consecutive scales; used to extrapolate
            sizes beyond the finest scale.
        num_train_timesteps (`int`, defaults to 100): T.
        cosine_s (`float`, defaults to 0.008): offset s of the cosine schedule.
        max_sampling_gamma (`float`, defaults to 0.55): gamma is clamped to this during sampling (not training).
        reblurring (`bool`, defaults to `True`): use the reblurring step at scales > 0 (else the plain DDPM step).
        clip_sample (`bool`, defaults to `True`): clamp clean-image estimates to [-1, 1].
        solver_order (`int`, defaults to 1): 1 is the reference's reblurring step. 2 (a speed-up, not the
            reference) makes the reblurring stages a second-order multistep solver: each step extrapolates the
            deblurred estimate linearly in log-SNR from this step's and the previous step's (DPM-Solver++(2M)'s
            data-prediction update, applied to the deblurred image). It costs no extra denoiser call, and it is
            what lets the fine scales take large strides (`num_inference_steps`, benchmarks/RESULTS.md). Scale 0
            (stochastic DDPM) and the plain DDPM step without reblurring are first order either way.

    Example:
        ```py
        >>> from sinddm_pipeline import SinDDMScheduler
        >>> scheduler = SinDDMScheduler(scale_sizes=[[48, 64], [67, 90]], rescale_losses=[1.087])
        >>> scheduler.start_timesteps
        [100, 52]
        >>> scheduler.set_timesteps(scale=1)
        >>> scheduler.timesteps[:3].tolist()
        [51, 50, 49]
        ```
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        scale_sizes: list[list[int]] | None = None,
        rescale_losses: list[float] | None = None,
        scale_factor: float = 1.411,
        num_train_timesteps: int = 100,
        cosine_s: float = 0.008,
        max_sampling_gamma: float = 0.55,
        reblurring: bool = True,
        clip_sample: bool = True,
        solver_order: int = 1,
    ):
        if solver_order not in (1, 2):
            raise ValueError(f"solver_order must be 1 (the reference) or 2 (multistep), got {solver_order!r}.")
        scale_sizes = [list(map(int, size)) for size in (scale_sizes or [])]
        rescale_losses = [float(loss) for loss in (rescale_losses or [])]
        if not scale_sizes or any(len(size) != 2 or min(size) < 1 for size in scale_sizes):
            raise ValueError(f"scale_sizes must be a non-empty list of (height, width) pairs, got {scale_sizes}.")
        check_scale_sizes(scale_sizes)
        check_count("num_train_timesteps", num_train_timesteps, 2, MAX_TRAIN_TIMESTEPS)
        if len(rescale_losses) != len(scale_sizes) - 1 or any(not loss >= 0 for loss in rescale_losses):
            raise ValueError(
                f"rescale_losses must hold one number >= 0 per scale after the first ({len(scale_sizes) - 1}), "
                f"got {rescale_losses}."
            )
        self.register_to_config(scale_sizes=scale_sizes, rescale_losses=rescale_losses)
        T = num_train_timesteps

        alphas_cumprod = cosine_alphas_cumprod(T, cosine_s)
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
        betas = 1.0 - alphas_cumprod / alphas_cumprod_prev
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        sigmas = np.sqrt(1.0 - alphas_cumprod) / np.sqrt(alphas_cumprod)

        def f32(array: np.ndarray) -> torch.Tensor:
            return torch.tensor(array, dtype=torch.float32)

        self.betas = f32(np.clip(betas, 0, 0.999))
        self.alphas_cumprod = f32(alphas_cumprod)
        self.alphas_cumprod_prev = f32(alphas_cumprod_prev)
        self.sqrt_alphas_cumprod = f32(np.sqrt(alphas_cumprod))
        self.sqrt_one_minus_alphas_cumprod = f32(np.sqrt(1.0 - alphas_cumprod))
        self.sqrt_recip_alphas_cumprod = f32(np.sqrt(1.0 / alphas_cumprod))
        self.sqrt_recipm1_alphas_cumprod = f32(np.sqrt(1.0 / alphas_cumprod - 1))
        self.posterior_variance = f32(posterior_variance)
        self.posterior_log_variance_clipped = f32(np.log(np.maximum(posterior_variance, 1e-20)))
        self.posterior_mean_coef1 = f32(betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod))
        self.posterior_mean_coef2 = f32((1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod))
        self._alphas_cumprod64 = alphas_cumprod
        # gammas[i - 1] belongs to scale i; computed in float64, stored as float32 like the reference.
        # A loss of 0 (a flat image) is floored so that gamma is 1, not nan.
        losses = np.maximum(np.array(rescale_losses, dtype=np.float64), 1e-12)
        self.gammas = f32(np.clip(sigmas[None, :] / losses[:, None], 0, 1)) if len(losses) else torch.zeros(0, T)
        # t_i: the first t with sigma_t > L_i; scale 0 starts from pure noise (all T steps). The reference would
        # run no step at all when even sigma_0 > L_i (a very smooth image); we run at least the t = 0 step.
        self.start_timesteps = [T] + [max(1, int(np.argmax(sigmas > loss))) for loss in losses]

        self.init_noise_sigma = 1.0
        self.current_scale = 0
        self._previous_estimate: tuple[int, torch.Tensor] | None = None  # (t, deblurred estimate) for solver_order 2
        self.timesteps = torch.arange(T - 1, -1, -1)
        self._next_timestep: dict[int, int] = {}

    @classmethod
    def from_pyramid(cls, pyramid: Pyramid, **kwargs) -> SinDDMScheduler:
        """The scheduler of a training image's [`~sinddm_pipeline.pyramid.Pyramid`] (other config by ``kwargs``)."""
        return cls(
            scale_sizes=[[height, width] for width, height in pyramid.sizes],
            rescale_losses=list(pyramid.rescale_losses),
            scale_factor=pyramid.scale_factor,
            **kwargs,
        )

    # ----------------------------------------------------------------------------------------------------------
    # sizes

    @property
    def num_scales(self) -> int:
        return len(self.config.scale_sizes)

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ----------------------------------------------------------------------------------------------------------
    # training side

    def gamma(self, scale: int, timestep: int, sampling: bool = True) -> float:
        """Blur weight gamma_scale(t); clamped to ``max_sampling_gamma`` when ``sampling``. 0 at scale 0."""
        if scale == 0:
            return 0.0
        value = float(self.gammas[scale - 1, timestep])
        return min(value, self.config.max_sampling_gamma) if sampling else value

    @staticmethod
    def _extract(array: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        values = array.to(like.device)[timesteps.to(like.device).long()].to(like.dtype)
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int
    ) -> torch.Tensor:
        """q(x_t | x_0): sqrt(alphā_t)·x_0 + sqrt(1 - alphā_t)·noise. ``timesteps``: a tensor of shape (batch,) in
        [0, T), or an int in [0, T], where t = T (``num_train_timesteps``), the start of scale 0's loop, is pure
        ``noise`` (the loop then denoises T - 1 .. 0)."""
        if isinstance(timesteps, int) and not isinstance(timesteps, bool):
            total = self.config.num_train_timesteps
            if not 0 <= timesteps <= total:
                raise ValueError(f"timesteps must be in [0, {total}], got {timesteps}.")
            if timesteps == total:
                return noise.to(original_samples.dtype).clone()
        timesteps = torch.as_tensor(timesteps).reshape(-1).expand(original_samples.shape[0])
        return (
            self._extract(self.sqrt_alphas_cumprod, timesteps, original_samples) * original_samples
            + self._extract(self.sqrt_one_minus_alphas_cumprod, timesteps, original_samples) * noise
        )

    def blur_mix(
        self, sample: torch.Tensor, blurry_sample: torch.Tensor, timesteps: torch.Tensor | int, scale: int
    ) -> torch.Tensor:
        """gamma_scale(t)·blurry + (1 - gamma_scale(t))·sample, unclamped gamma (training); ``sample`` at scale 0."""
        if scale == 0:
            return sample
        timesteps = torch.as_tensor(timesteps).reshape(-1).expand(sample.shape[0])
        gamma = self._extract(self.gammas[scale - 1], timesteps, sample)
        return gamma * blurry_sample + (1 - gamma) * sample

    def training_input(
        self,
        sample: torch.Tensor,
        blurry_sample: torch.Tensor | None,
        noise: torch.Tensor,
        timesteps: torch.Tensor | int,
        scale: int,
    ) -> torch.Tensor:
        """The noisy model input of a training step (SPEC §4): blur-mix at scales > 0, then add noise."""
        if scale > 0 and blurry_sample is None:
            raise ValueError(f"blurry_sample is required at scale {scale} > 0.")
        return self.add_noise(self.blur_mix(sample, blurry_sample, timesteps, scale), noise, timesteps)

    # ----------------------------------------------------------------------------------------------------------
    # sampling side

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        *,
        scale: int = 0,
        start_timestep: int | None = None,
    ) -> None:
        """Prepare the denoising loop of one scale: ``timesteps`` = start - 1, ..., 0. The first two arguments are
        diffusers' (``set_timesteps(50, scale=2)`` reads as in any scheduler); the scale and start are keywords.

        The sample entering the loop is noised to ``start_timestep`` (scale 0: pure noise, start = T; scale i:
        t_i by default). ``num_inference_steps`` (a speed-up, off by default) keeps at most that many of those
        timesteps, evenly spaced and always including start - 1 and 0; `step` then jumps between them (respaced
        DDPM at scale 0, a strided reblurring step above). ``None`` or a count >= start runs every step (exact).
        """
        if not 0 <= scale < self.num_scales:
            raise ValueError(f"scale must be in [0, {self.num_scales - 1}], got {scale}.")
        start = self.start_timesteps[scale] if start_timestep is None else int(start_timestep)
        if not 1 <= start <= self.config.num_train_timesteps:
            raise ValueError(f"start_timestep must be in [1, {self.config.num_train_timesteps}], got {start}.")
        if num_inference_steps is not None and (
            isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 2
        ):
            raise ValueError(
                f"num_inference_steps must be an int >= 2 (the first and the last step) or None, "
                f"got {num_inference_steps!r}."
            )
        self.current_scale = scale
        self._previous_estimate = None
        if num_inference_steps is None or num_inference_steps >= start:
            steps = np.arange(start - 1, -1, -1)
        else:
            steps = np.unique(np.round(np.linspace(0, start - 1, num_inference_steps)).astype(np.int64))[::-1]
        self.timesteps = torch.from_numpy(steps.copy()).to(device)
        self._next_timestep = {int(a): int(b) for a, b in zip(steps[:-1], steps[1:], strict=True)}

    def previous_timestep(self, timestep: int) -> int:
        """The timestep the step from ``timestep`` lands on: the next one set by `set_timesteps`, else t - 1."""
        return self._next_timestep.get(int(timestep), int(timestep) - 1)

    def _ddpm_coefficients(self, t: int, prev_t: int) -> tuple[float, float, float]:
        """(c1, c2, std) of q(x_prev | x_t, x0): the stored float32 arrays for prev = t - 1 (exact), else the
        respaced process between alphā_t and alphā_prev (float64)."""
        if prev_t == t - 1:
            std = math.exp(0.5 * float(self.posterior_log_variance_clipped[t]))
            return float(self.posterior_mean_coef1[t]), float(self.posterior_mean_coef2[t]), std
        a_t, a_prev = self._alphas_cumprod64[t], self._alphas_cumprod64[prev_t]
        beta = 1.0 - a_t / a_prev
        c1 = beta * math.sqrt(a_prev) / (1.0 - a_t)
        c2 = (1.0 - a_prev) * math.sqrt(1.0 - beta) / (1.0 - a_t)
        variance = max(beta * (1.0 - a_prev) / (1.0 - a_t), 1e-20)
        return c1, c2, math.sqrt(variance)

    def predict_original_sample(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """x0 = sqrt(1/alphā_t)·x_t - sqrt(1/alphā_t - 1)·eps (not clamped)."""
        t = int(timestep)
        return (
            float(self.sqrt_recip_alphas_cumprod[t]) * sample
            - float(self.sqrt_recipm1_alphas_cumprod[t]) * model_output
        )

    def deblur(self, pred_original_sample: torch.Tensor, blurry_sample: torch.Tensor, timestep: int, scale: int):
        """The deblurred estimate d = (x0 - g(t)·blurry) / (1 - g(t)), g clamped for sampling (not clamped itself)."""
        g = self.gamma(scale, int(timestep))
        return (pred_original_sample - g * blurry_sample) / (1 - g)

    def _log_snr(self, t: int) -> float:
        """lambda_t = log(sqrt(alphā_t) / sqrt(1 - alphā_t)), in float64."""
        a = float(self._alphas_cumprod64[t])
        return 0.5 * math.log(a / (1.0 - a))

    def _second_order_estimate(
        self, pred: torch.Tensor, x0: torch.Tensor, blurry: torch.Tensor, t: int, prev_t: int, scale: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The deblurred estimate and x0 that a second-order multistep step uses (`solver_order` 2).

        With the previous step's estimate d' (at t') and this one's d (at t), stepping to prev_t:
        D = (1 + 1/(2r))·d - 1/(2r)·d' with r = (lambda_t - lambda_t') / (lambda_prev_t - lambda_t), and x0 is
        re-mixed from D (x0 = g(t)·blurry + (1 - g(t))·D). The first step of a stage and the last (t = 0, no
        step size) use d itself.
        """
        previous, self._previous_estimate = self._previous_estimate, (t, pred)
        if previous is None or t == 0:
            return pred, x0
        previous_t, previous_pred = previous
        step = self._log_snr(prev_t) - self._log_snr(t)
        r = (self._log_snr(t) - self._log_snr(previous_t)) / step
        extrapolated = (1 + 0.5 / r) * pred - (0.5 / r) * previous_pred
        g = self.gamma(scale, t)
        return extrapolated, g * blurry + (1 - g) * extrapolated

    def undo_step(
        self,
        sample: torch.Tensor,
        timestep: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """RePaint's jump back (as diffusers' `RePaintScheduler.undo_step`): the result of the step from ``timestep``,
        at the timestep that step landed on (`previous_timestep`), noised forward to ``timestep`` again:
        x_t = sqrt(alphā_t / alphā_prev)·x_prev + sqrt(1 - alphā_t / alphā_prev)·noise: the forward process of the
        plain DDPM step (scale 0, or reblurring off). After a reblurring step it would leave the clean part at the
        blur mix of prev, not t, and the redone step would deblur it once more (so `denoise_stage` resamples the
        DDPM steps only). The second-order solver's history is dropped: the step redone from here is first order.

        Example:
            >>> import torch
            >>> scheduler = SinDDMScheduler(scale_sizes=[[8, 8]], rescale_losses=[])
            >>> scheduler.set_timesteps(scale=0)
            >>> scheduler.undo_step(torch.zeros(1, 3, 8, 8), 50, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([1, 3, 8, 8])
        """
        t = int(timestep)
        prev_t = self.previous_timestep(t)
        ratio = float(self._alphas_cumprod64[t] / (self._alphas_cumprod64[prev_t] if prev_t >= 0 else 1.0))
        noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        self._previous_estimate = None
        return math.sqrt(ratio) * sample + math.sqrt(1.0 - ratio) * noise

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        scale: int | None = None,
        blurry_sample: torch.Tensor | None = None,
        pred_original_sample: torch.Tensor | None = None,
        reblurring: bool | None = None,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SinDDMSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One reverse step x_t -> x_{t-1} (SPEC §5).

        Args:
            model_output: the predicted noise eps.
            timestep: the current t; the step lands on the next timestep of `set_timesteps` (t - 1 unless strided).
            sample: x_t.
            scale: the pyramid scale (defaults to the one of the last `set_timesteps`).
            blurry_sample: the up-sampled previous scale (needed with reblurring at scales > 0).
            pred_original_sample: a clean-image estimate to use instead of the model's (for guidance: ROI, CLIP);
                at scales > 0 with reblurring, the deblurred estimate.
            reblurring: override the config's ``reblurring``.
            generator: for the DDPM noise.
            variance_noise: the DDPM noise itself, instead of drawing it.
            return_dict: return a [`SinDDMSchedulerOutput`] instead of a tuple.
        """
        t = int(timestep)
        scale = self.current_scale if scale is None else scale
        reblurring = self.config.reblurring if reblurring is None else reblurring
        clip = self.config.clip_sample
        x0 = self.predict_original_sample(model_output, t, sample)

        prev_t = self.previous_timestep(t)

        if scale == 0 or not reblurring:
            pred = x0 if pred_original_sample is None else pred_original_sample
            if clip:
                pred = pred.clamp(-1.0, 1.0)
            if t > 0:
                c1, c2, std = self._ddpm_coefficients(t, prev_t)
                if variance_noise is None:
                    variance_noise = randn_tensor(
                        sample.shape, generator=generator, device=sample.device, dtype=sample.dtype
                    )
                prev = c1 * pred + c2 * sample + std * variance_noise
            else:
                prev = float(self.posterior_mean_coef1[0]) * pred + float(self.posterior_mean_coef2[0]) * sample
        else:
            if blurry_sample is None:
                raise ValueError(f"blurry_sample is required for the reblurring step at scale {scale} > 0.")
            pred = self.deblur(x0, blurry_sample, t, scale) if pred_original_sample is None else pred_original_sample
            if self.config.solver_order == 2:
                pred, x0 = self._second_order_estimate(pred, x0, blurry_sample, t, prev_t, scale)
            if t > 0:
                g_prev = self.gamma(scale, prev_t)
                target = g_prev * blurry_sample + (1 - g_prev) * pred
                if clip:
                    target, x0 = target.clamp(-1.0, 1.0), x0.clamp(-1.0, 1.0)
                # DDIM-like deterministic step; the reference's 1e-10 noise is below float32 resolution.
                direction = (sample - float(self.sqrt_alphas_cumprod[t]) * x0) / float(
                    self.sqrt_one_minus_alphas_cumprod[t]
                )
                prev = (
                    float(self.sqrt_alphas_cumprod[prev_t]) * target
                    + math.sqrt(1.0 - float(self.alphas_cumprod[prev_t])) * direction
                )
            else:
                prev = pred.clamp(-1.0, 1.0) if clip else pred
            if clip:
                pred = pred.clamp(-1.0, 1.0)

        if not return_dict:
            return (prev, pred)
        return SinDDMSchedulerOutput(prev_sample=prev, pred_original_sample=pred)
