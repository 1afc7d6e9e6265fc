"""Stage: diffusion. The DDPM noise schedule (one object, built once), the forward process
q(x_t | x_0), the epsilon loss, and samplers in the manner of diffusers' schedulers: an object
with ``set_timesteps`` and ``step``, whose ``step`` returns a :class:`SamplerOutput`.

Equation map (numbers as in the book's pipeline chapters 2 and 3):

- (1) beta_t linear in [beta_start, beta_end]        -> :func:`linear_beta_schedule`
- (2) alpha_bar_t = prod_s (1 - beta_s)               -> :func:`alphas_cumprod`
- (3) x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps       -> :meth:`NoiseSchedule.q_sample`
- (4) L_simple = E ||eps - eps_theta(x_t, t, c)||^2   -> :func:`diffusion_loss`
- (5) eps_w = eps(x,t,0) + w (eps(x,t,c) - eps(x,t,0))-> :func:`guided_eps`
- (6) posterior mean/variance of q(x_{t-1}|x_t,x_0)   -> :meth:`NoiseSchedule.posterior`,
      used by :meth:`AncestralSampler.step`
- (7) DDIM update (eta = 0 deterministic)             -> :meth:`DDIMSampler.step`
- DPM-Solver++ (2M) on x0_hat, in 10 steps or fewer    -> :meth:`DPMSolverPPSampler.step`

The reverse loop itself is :func:`sample_loop`; :func:`generate`, :func:`reconstruct` and
:func:`inpaint` are three ways of starting and steering it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .data import Batcher
from .fit import FitHooks, FitOptions, compiled, fit, optimizer, seed_everything
from .live import progress as progress_bar
from .runtime import autocast, levers, unet_memory_format


def linear_beta_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Eq. (1): Ho et al.'s linear schedule, in float64 for accurate cumulative products."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Eq. (2): alpha_bar_t = prod_{s<=t} (1 - beta_s)."""
    return torch.cumprod(1.0 - betas, dim=0)


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.to(t.device)[t].float().reshape(-1, *([1] * (ndim - 1)))


_ONE = torch.tensor(1.0, dtype=torch.float64)


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """beta_t, alpha_bar_t and the posterior of q(x_{t'} | x_t, x_0), built once (float64) from
    a linear schedule; ``spec`` rebuilds it (a diffusion checkpoint carries it).

    ``alpha_bar(-1)`` is 1: "the clean image", the step after the last."""

    T: int
    beta_start: float
    beta_end: float
    betas: torch.Tensor = dataclasses.field(init=False, repr=False)
    alphas_cumprod: torch.Tensor = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        if not (isinstance(self.T, int) and self.T > 0 and 0 < self.beta_start < self.beta_end < 1):
            raise ValueError(f"a noise schedule needs T >= 1 and 0 < beta_start < beta_end < 1, got "
                             f"T={self.T}, beta_start={self.beta_start}, beta_end={self.beta_end}")
        betas = linear_beta_schedule(self.T, self.beta_start, self.beta_end)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas_cumprod", alphas_cumprod(betas))

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        return cls(T, beta_start, beta_end)

    @classmethod
    def from_config(cls, config) -> "NoiseSchedule":
        """The schedule of a :class:`kr_utils.config.DiffusionConfig` (T, beta_start, beta_end)."""
        return cls(config.T, config.beta_start, config.beta_end)

    @classmethod
    def rescaled(cls, T: int) -> "NoiseSchedule":
        """Eq. (1) rescaled to T steps (betas times 1000 / T, capped at 0.999, as in Nichol &
        Dhariwal 2021), so a short chain still ends in noise. It does not keep alpha_bar_T: at
        T = 1000 it is 4.0e-5, at T = 50 (beta_T = 0.4) 7.7e-6, at T = 10 (beta_T capped at
        0.999) 8.7e-7. Large steps also break the small-beta assumption under which each reverse
        step is Gaussian (chapter T3): at T = 50 the last steps are far from small."""
        scale = 1000 / T
        return cls(T, 1e-4 * scale, min(0.02 * scale, 0.999))

    @property
    def spec(self) -> dict:
        return {"T": self.T, "beta_start": self.beta_start, "beta_end": self.beta_end}

    def alpha_bar(self, t: int) -> torch.Tensor:
        return self.alphas_cumprod[t] if t >= 0 else _ONE

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Eq. (3): draw x_t ~ q(x_t | x_0) in closed form, given the noise eps."""
        a = _gather(self.alphas_cumprod, t, x0.ndim)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, clip: bool) -> torch.Tensor:
        """x_0 from x_t and the predicted noise (eq. 3 solved for x_0), clipped to [-1, 1] with ``clip``."""
        ab = self.alphas_cumprod[t]
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clip else x0

    def posterior(self, t: int, t_prev: int) -> tuple[float, float, float]:
        """Eq. (6): coefficients of mu = c0 x_0 + ct x_t and the variance of q(x_{t'} | x_t, x_0),
        t' = ``t_prev`` (t - 1 on the full chain); between kept steps t > t' of a shorter
        chain beta = 1 - alpha_bar_t / alpha_bar_t', as diffusers' DDPMScheduler does."""
        ab, ab_prev = self.alphas_cumprod[t], self.alpha_bar(t_prev)
        beta = 1 - ab / ab_prev
        c0 = beta * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * (1 - beta).sqrt() / (1 - ab)
        var = beta * (1 - ab_prev) / (1 - ab)
        return c0.item(), ct.item(), var.item()


def diffusion_loss(model, x0: torch.Tensor, y: torch.Tensor, schedule: NoiseSchedule, p_uncond: float,
                   generator: torch.Generator | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (4), L_simple, with the class replaced by the null token with prob. ``p_uncond``
    so one network learns both eps(x,t,c) and eps(x,t,0) for classifier-free guidance.

    ``weights`` (one per timestep, e.g. :func:`kr_utils.theory.analytic.elbo_weights`) turns it
    into the weighted sum of KL terms of the ELBO (theory chapter 3); None is L_simple.
    """
    b, dev = x0.shape[0], x0.device
    gdev = generator.device if generator is not None else dev  # a CPU generator may drive GPU data
    t = torch.randint(0, schedule.T, (b,), device=gdev, generator=generator).to(dev)
    noise = torch.randn(x0.shape, device=gdev, generator=generator).to(dev)
    drop = torch.rand(b, device=gdev, generator=generator).to(dev) < p_uncond
    null_class = getattr(model, "module", model).null_class  # DistributedDataParallel holds the model as .module
    y = torch.where(drop, torch.full_like(y, null_class), y)
    if weights is None:
        return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), noise)
    per_sample = (model(schedule.q_sample(x0, t, noise), t, y) - noise).pow(2).flatten(1).mean(1)
    return (_gather(weights, t, 1).squeeze(-1) * per_sample).mean()


def guided_eps(model, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """Eq. (5): classifier-free guidance, eps_0 + w (eps_c - eps_0).

    w = 0 is unconditional, w = 1 purely conditional (one network pass instead of two),
    w > 1 pushes towards the class. The thesis' code (TeaPearce) writes
    (1 + w') eps_c - w' eps_0, i.e. w = 1 + w'; its ``guide_w = 0.5`` is w = 1.5 here.
    One "step" is one batched pass over both halves.
    """
    null = torch.full_like(y, model.null_class)
    if w == 1.0:
        return model(x, t, y)
    if w == 0.0:
        return model(x, t, null)
    eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
    eps_c, eps_u = eps.chunk(2)
    return eps_u + w * (eps_c - eps_u)


# ------------------------------------------------------------------------------- samplers


@dataclass
class SamplerOutput:
    """What one reverse step returns (as diffusers' schedulers do): the state at the previous
    kept timestep, and the clean image the model's noise prediction implies."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else x.device  # a CPU generator may drive GPU data
    return torch.randn(x.shape, generator=generator, device=device).to(x.device)


class Sampler:
    """The interface every sampler shares: a :class:`NoiseSchedule`, ``set_timesteps(n)``
    choosing n of its T steps ('trailing' spacing: t = T-1 first; 'leading' as diffusers'
    default), ``prev_timestep(t)`` (-1 after the last), and ``step``.

    ``clip_x0`` clips the predicted x_0 to [-1, 1]; ``noise_scale`` multiplies the noise that a
    stochastic step adds (the thesis' ``noise_scale``)."""

    default_steps: int | None = None
    config_steps = True  # build_sampler keeps the config's num_steps (the ancestral chain: all T)

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, config) -> "Sampler":
        """This sampler with the settings of a :class:`kr_utils.config.SamplerConfig` that it uses."""
        return cls(schedule, clip_x0=config.clip_x0, noise_scale=config.noise_scale)

    def __init__(self, schedule: NoiseSchedule, clip_x0: bool = True, noise_scale: float = 1.0,
                 spacing: str = "trailing"):
        if spacing not in ("leading", "trailing"):
            raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")
        self.schedule, self.clip_x0, self.noise_scale, self.spacing = schedule, clip_x0, noise_scale, spacing
        self.set_timesteps(self.default_steps)

    @property
    def T(self) -> int:
        return self.schedule.T

    def set_timesteps(self, num_steps: int | None = None) -> None:
        """Keep ``num_steps`` of the T steps (all of them with None)."""
        T = self.T
        num_steps = T if num_steps is None else num_steps
        if not isinstance(num_steps, int) or not 0 < num_steps <= T:
            raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
        if self.spacing == "leading":
            self.timesteps = (torch.arange(num_steps) * (T // num_steps)).flip(0)
        else:
            self.timesteps = torch.round(torch.arange(T, 0, -T / num_steps)).long() - 1
        steps = self.timesteps.tolist()
        self._prev = dict(zip(steps, steps[1:] + [-1]))

    def prev_timestep(self, t: int) -> int:
        return self._prev[t]

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SamplerOutput:
        raise NotImplementedError


class AncestralSampler(Sampler):
    """The thesis' ancestral DDPM sampler (Ho et al. Alg. 2), one network call per kept step:
    x_{t'} = mu(x_0_hat, x_t) + noise_scale * sigma z with the posterior of eq. (6). With
    ``clip_x0`` the posterior mean is written in terms of the clipped x_0, as diffusers'
    DDPMScheduler does with ``clip_sample=True``. All T steps by default."""

    config_steps = False

    def step(self, model_output, timestep, sample, generator=None) -> SamplerOutput:
        t, t_prev = timestep, self._prev[timestep]
        x0 = self.schedule.predict_x0(sample, model_output, t, self.clip_x0)
        c0, ct, var = self.schedule.posterior(t, t_prev)
        mean = c0 * x0 + ct * sample
        if t_prev < 0:
            return SamplerOutput(mean, x0)
        return SamplerOutput(mean + self.noise_scale * var ** 0.5 * _noise_like(sample, generator), x0)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) on a subset of the T steps, eq. (7):
    x_{t'} = sqrt(ab_t') x0_hat + sqrt(1 - ab_t' - sigma^2) eps + noise_scale * sigma z, with
    sigma = eta sqrt((1 - ab_t') / (1 - ab_t)) sqrt(1 - ab_t / ab_t'). eta = 0 (the default) is
    deterministic and draws nothing from the generator; eta = 1 has the ancestral variance.
    50 steps by default."""

    default_steps = 50

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, config) -> "DDIMSampler":
        return cls(schedule, clip_x0=config.clip_x0, noise_scale=config.noise_scale, eta=config.eta)

    def __init__(self, schedule: NoiseSchedule, clip_x0: bool = True, noise_scale: float = 1.0,
                 spacing: str = "trailing", eta: float = 0.0):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = eta
        super().__init__(schedule, clip_x0, noise_scale, spacing)

    def step(self, model_output, timestep, sample, generator=None) -> SamplerOutput:
        t, t_prev = timestep, self._prev[timestep]
        ab, ab_prev = self.schedule.alphas_cumprod[t], self.schedule.alpha_bar(t_prev)
        x0 = self.schedule.predict_x0(sample, model_output, t, self.clip_x0)
        eps = model_output
        if self.clip_x0:  # recompute eps from the clipped x0 so the two stay consistent
            eps = (sample - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma2 = self.eta ** 2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev) if self.eta > 0 else 0.0 * ab
        prev = ab_prev.sqrt().item() * x0 + (1 - ab_prev - sigma2).sqrt().item() * eps
        if self.eta > 0 and t_prev >= 0:
            prev = prev + self.noise_scale * sigma2.sqrt().item() * _noise_like(sample, generator)
        return SamplerOutput(prev, x0)


class DPMSolverPPSampler(Sampler):
    """DPM-Solver++ (Lu et al. 2022), multistep, second order (2M), on the data prediction
    x0_hat: with alpha = sqrt(ab), sigma = sqrt(1 - ab), lambda = log(alpha / sigma) and
    h = lambda_t' - lambda_t,

        first order:  x_t' = (sigma_t' / sigma_t) x_t - alpha_t' (e^{-h} - 1) x0_hat_t,
        second order: the same with D = x0_hat_t + (x0_hat_t - x0_hat_prev) / (2 r),
                      r = h_prev / h (the "midpoint" form),

    the first step and the last (to t = -1, the clean image, where it returns x0_hat) of first
    order, as diffusers' ``DPMSolverMultistepScheduler`` does (``tests/test_diffusion.py``
    checks it step by step). ``clip_x0`` clips x0_hat to [-1, 1] (diffusers' thresholding with
    ``sample_max_value=1``). Deterministic: draws nothing from the generator. The solver keeps
    the previous step's x0_hat; a step that does not follow the previous one starts afresh.
    10 steps by default."""

    default_steps = 10

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, config) -> "DPMSolverPPSampler":
        return cls(schedule, clip_x0=config.clip_x0)  # deterministic: no noise to scale

    def set_timesteps(self, num_steps: int | None = None) -> None:
        super().set_timesteps(num_steps)
        self._history = None  # (timestep, x0_hat, h) of the previous step

    def _lambda(self, t: int) -> torch.Tensor:
        ab = self.schedule.alphas_cumprod[t]
        return 0.5 * (torch.log(ab) - torch.log1p(-ab))

    def step(self, model_output, timestep, sample, generator=None) -> SamplerOutput:
        t, t_prev = timestep, self._prev[timestep]
        x0 = self.schedule.predict_x0(sample, model_output, t, self.clip_x0)
        history, self._history = self._history, None
        if t_prev < 0:
            return SamplerOutput(x0, x0)
        ab, ab_prev = self.schedule.alphas_cumprod[t], self.schedule.alphas_cumprod[t_prev]
        h = self._lambda(t_prev) - self._lambda(t)
        sigma_ratio = ((1 - ab_prev) / (1 - ab)).sqrt().item()
        coef = (ab_prev.sqrt() * torch.expm1(-h)).item()  # alpha_t' (e^{-h} - 1)
        d = x0
        if history is not None and self._prev.get(history[0]) == t:  # the step right after the kept one
            r = (history[2] / h).item()
            d = x0 + (x0 - history[1]) / (2 * r)
        self._history = (t, x0, h)
        return SamplerOutput(sigma_ratio * sample - coef * d, x0)


SAMPLERS = {"ancestral": AncestralSampler, "ddim": DDIMSampler, "dpmpp2m": DPMSolverPPSampler}
SAMPLER_NAMES = {"ancestral": "the ancestral chain", "ddim": "DDIM", "dpmpp2m": "DPM-Solver++ (2M)"}


def sampler_label(config) -> str:
    """How the book names the sampler of a :class:`kr_utils.config.SamplerConfig`: "DDIM in 20
    steps", "DPM-Solver++ (2M) in 10 steps"; the ancestral chain runs all T steps
    (:func:`build_sampler`), so its label has no count."""
    name = SAMPLER_NAMES[config.sampler]
    return name if config.sampler == "ancestral" else f"{name} in {config.num_steps} steps"


def build_sampler(config, schedule: NoiseSchedule, **changes) -> Sampler:
    """The sampler of a :class:`kr_utils.config.SamplerConfig` (with ``changes`` to its fields:
    ``sampler``, ``num_steps``, ``clip_x0``, ``noise_scale``, ``eta``) on ``schedule``.
    The ancestral sampler runs all T steps unless ``num_steps`` is changed explicitly."""
    config = dataclasses.replace(config, **changes)
    if config.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.sampler!r}; expected one of {sorted(SAMPLERS)}")
    cls = SAMPLERS[config.sampler]
    s = cls.from_config(schedule, config)
    s.set_timesteps(config.num_steps if cls.config_steps else changes.get("num_steps"))
    return s


def sample_loop(eps_fn, sampler: Sampler, x: torch.Tensor, generator: torch.Generator | None = None,
                start_t: int | None = None, after_step=None, progress: bool = False,
                return_trajectory: tuple = ()):
    """The reverse process: apply ``sampler.step`` from x (at ``start_t``, default the first
    timestep) down to t = 0, with ``eps = eps_fn(x, t_batch)`` at each step.

    ``after_step(x, t_prev)`` may edit the state after each step (inpainting replaces the
    known pixels there). ``return_trajectory`` lists the timesteps at which to keep x_t.
    """
    traj = {}
    steps = [t for t in sampler.timesteps.tolist() if start_t is None or t <= start_t]
    for t in progress_bar(steps, disable=not progress, desc="sampling", leave=False):
        tt = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        x = sampler.step(eps_fn(x, tt).float(), t, x, generator=generator).prev_sample
        if after_step is not None:
            x = after_step(x, sampler.prev_timestep(t))
        if t in return_trajectory:
            traj[t] = x.detach().cpu()
    return (x, traj) if return_trajectory else x


@torch.no_grad()
def generate(model, sampler, labels: torch.Tensor, guidance_w: float, generator: torch.Generator,
             x_T_scale: float = 1.0, progress: bool = False, return_trajectory: tuple = ()):
    """Run ``sampler`` from noise x_T ~ N(0, x_T_scale^2 I) to x_0 for the given labels.

    ``generator`` (explicit, on CPU) makes the result reproducible for a given batch.
    ``return_trajectory`` lists timesteps at which to keep a copy of x_t as the sampler left it
    after its step from t (for figures; at the last timestep, the sample before the clamp).
    The state has the model's ``sample_shape``: images by default, clamped to [-1, 1] at the
    end; 2-D points for the toy models of the theory chapters, left as they are.
    """
    device = next(model.parameters()).device
    labels = labels.to(device)
    x = x_T_scale * torch.randn((len(labels), *getattr(model, "sample_shape", (1, 28, 28))),
                                generator=generator, device=generator.device).to(device)
    model.eval()
    if x.ndim == 4:
        model.to(memory_format=unet_memory_format(device))
        x = x.contiguous(memory_format=unet_memory_format(device))
    # bf16 network passes for images where the device runs them natively (runtime.precision);
    # the toy 2-D models stay float32; the sampler's arithmetic is float32 throughout.
    amp = autocast(device) if x.ndim == 4 else torch.autocast(device.type, enabled=False)

    def eps_fn(x, tt):
        with amp:
            return guided_eps(model, x, tt, labels, guidance_w)

    out = sample_loop(eps_fn, sampler, x, generator, progress=progress, return_trajectory=return_trajectory)
    x, traj = out if return_trajectory else (out, {})
    x = x.clamp(-1, 1).cpu() if x.ndim == 4 else x.cpu()
    return (x, traj) if return_trajectory else x


@torch.no_grad()
def reconstruct(model, sampler, x0: torch.Tensor, t_start: int, labels: torch.Tensor, guidance_w: float,
                generator: torch.Generator, progress: bool = False):
    """Theory chapter 7: noise real images to ``t_start`` with eq. (3), then run the reverse
    process from there. ``labels`` may be the null class (reconstruct without the class)."""
    device = next(model.parameters()).device
    noise = torch.randn(x0.shape, generator=generator, device=generator.device)
    x_t = sampler.schedule.q_sample(x0.cpu(), torch.full((len(x0),), t_start), noise).to(device)
    labels = labels.to(device)
    model.eval()
    x = sample_loop(lambda x, tt: guided_eps(model, x, tt, labels, guidance_w), sampler, x_t, generator,
                    start_t=t_start, progress=progress)
    return x.clamp(-1, 1).cpu(), x_t.cpu()


@torch.no_grad()
def inpaint(model, sampler, x_known: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, guidance_w: float,
            generator: torch.Generator, progress: bool = False):
    """Theory chapter 7, RePaint-style (Lugmayr et al. 2022, without resampling): start from
    noise and after every reverse step overwrite the known pixels (``mask`` = 1) with the
    real image noised to the same step by eq. (3), so only the hole is generated."""
    device = next(model.parameters()).device
    mask = mask.to(device).float()
    known = x_known.to(device)
    labels = labels.to(device)
    x = torch.randn(known.shape, generator=generator, device=generator.device).to(device)

    def keep_known(x, t_prev):
        if t_prev < 0:
            noised = known
        else:
            noise = torch.randn(known.shape, generator=generator, device=generator.device).to(device)
            noised = sampler.schedule.q_sample(known, torch.full((len(known),), t_prev, device=device), noise)
        return mask * noised + (1 - mask) * x

    model.eval()
    x = keep_known(x, int(sampler.timesteps[0]))
    x = sample_loop(lambda x, tt: guided_eps(model, x, tt, labels, guidance_w), sampler, x, generator,
                    after_step=keep_known, progress=progress)
    return x.clamp(-1, 1).cpu()


# ------------------------------------------------------------------------------- training


def _warmup_cosine(warmup: int, total: int):
    # Linear warm-up then cosine decay to 10%: stable start, sharper final samples.
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))
    return f


@dataclass(frozen=True)
class DiffusionOptions:
    """How one call of :func:`train_diffusion` runs, beside its config (what it trains by).

    ``after_step(step, ema_model)`` runs after each update (the milestone checkpoints of the
    degradation study). ``resume_path``: the run's state, saved every ``save_every_s`` seconds
    and at the end; an interrupted run continues from it. ``wrap(model)`` returns the module the
    loss calls, e.g. a ``DistributedDataParallel`` around it (:mod:`kr_utils.distributed`); the
    optimiser, the EMA and the clipping act on ``model`` itself. ``desc`` and ``progress``: the
    progress bar's label, and whether it is shown."""

    after_step: Callable | None = None
    resume_path: str | Path | None = None
    save_every_s: float | None = 120.0
    desc: str = "diffusion"
    wrap: Callable | None = None
    progress: bool = True


def train_diffusion(model, images: torch.Tensor, labels: torch.Tensor, config, *, seed: int, device,
                    options: DiffusionOptions = DiffusionOptions()):
    """Train the conditional U-Net on L_simple (eq. 4) by ``config`` (a
    :class:`kr_utils.config.DiffusionConfig`: steps, batch size, learning rate, class dropout
    ``p_uncond``, EMA decay, schedule) with :func:`kr_utils.fit.fit`: AdamW, warm-up then
    cosine decay, gradient norm clipped at 1, EMA weights; ``options``: :class:`DiffusionOptions`.

    Returns the :class:`kr_utils.fit.FitResult` (``.model`` is the EMA model, ``.losses`` the
    per-step losses)."""
    wrap = options.wrap
    gen = seed_everything(seed)
    fmt = unet_memory_format(device)
    model = model.to(device).to(memory_format=fmt)
    schedule = NoiseSchedule.from_config(config)
    images, labels = images.to(device), labels.to(device)
    opt = optimizer("adamw", model.parameters(), config.lr, device, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(min(500, config.steps // 10 + 1), config.steps))
    net = compiled(wrap(model) if wrap is not None else model, device)  # the model itself unless wrapped or compiled
    on_device = levers(device).device_batches

    def loss_fn(idx):  # the timesteps and noise come from torch's global generator (saved on resume),
        # on the device where the data are: no per-step copy from the host
        return diffusion_loss(net, images[idx].contiguous(memory_format=fmt), labels[idx], schedule,
                              config.p_uncond, generator=None)

    fit_options = FitOptions(steps=config.steps, amp=True, clip_grad=1.0, ema_decay=config.ema_decay,
                             resume_path=options.resume_path, save_every_s=options.save_every_s,
                             save_at_epoch_end=False, desc=options.desc, progress=options.progress)
    batcher = Batcher(len(images), config.batch_size, gen, drop_last=True, device=device if on_device else None)
    return fit(model, loss_fn, batcher, opt, fit_options,
               scheduler=sched, device=device, hooks=FitHooks(after_step=options.after_step))
