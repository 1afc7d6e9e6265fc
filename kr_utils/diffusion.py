"""Stage: diffusion. The DDPM noise schedule, the forward process q(x_t | x_0), the
epsilon loss, and samplers written as objects in the style of diffusers' schedulers
(``set_timesteps`` then ``step``).

Equation map (numbers as in the book's pipeline chapter):

- (1) beta_t linear in [beta_start, beta_end]        -> :func:`linear_beta_schedule`
- (2) alpha_bar_t = prod_s (1 - beta_s)               -> :func:`alphas_cumprod`
- (3) x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps       -> :func:`q_sample`
- (4) L_simple = E ||eps - eps_theta(x_t, t, c)||^2   -> :func:`diffusion_loss`
- (5) eps_w = eps(x,t,0) + w (eps(x,t,c) - eps(x,t,0))-> :func:`guided_eps`
- (6) posterior mean/variance of q(x_{t-1}|x_t,x_0)   -> :class:`AncestralSampler.step`
- (7) DDIM update (eta = 0)                           -> :class:`DDIMSampler.step`

The reverse loop itself is :func:`sample_loop`; :func:`generate`, :func:`reconstruct` and
:func:`inpaint` are three ways of starting and steering it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .artifacts import autocast, bf16
from .live import progress as progress_bar


def unet_memory_format(device) -> torch.memory_format:
    """The U-Net's faster layout on ``device`` (``benchmarks/precision.py``): channels-last on
    a GPU and on a CPU in float32; contiguous on a CPU under bf16, where channels-last made
    its training steps 1.8x slower on 2 EPYC cores."""
    dev = torch.device(device)
    return torch.contiguous_format if dev.type == "cpu" and bf16(dev) else torch.channels_last


def linear_beta_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Eq. (1): Ho et al.'s linear schedule, in float64 for accurate cumulative products."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Eq. (2): alpha_bar_t = prod_{s<=t} (1 - beta_s)."""
    return torch.cumprod(1.0 - betas, dim=0)


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.to(t.device)[t].float().reshape(-1, *([1] * (ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Eq. (3): draw x_t ~ q(x_t | x_0) in closed form, given the noise eps."""
    a = _gather(ab, t, x0.ndim)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def diffusion_loss(model, x0: torch.Tensor, y: torch.Tensor, ab: torch.Tensor, p_uncond: float,
                   generator: torch.Generator | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (4), L_simple, with the class replaced by the null token with prob. ``p_uncond``
    so one network learns both eps(x,t,c) and eps(x,t,0) for classifier-free guidance.

    ``weights`` (one per timestep, e.g. :func:`kr_utils.theory.elbo_weights`) turns it into
    the weighted sum of KL terms of the ELBO (theory chapter 3); None is L_simple.
    """
    b, dev = x0.shape[0], x0.device
    gdev = generator.device if generator is not None else dev  # a CPU generator may drive GPU data
    t = torch.randint(0, len(ab), (b,), device=gdev, generator=generator).to(dev)
    noise = torch.randn(x0.shape, device=gdev, generator=generator).to(dev)
    drop = torch.rand(b, device=gdev, generator=generator).to(dev) < p_uncond
    y = torch.where(drop, torch.full_like(y, model.null_class), y)
    if weights is None:
        return F.mse_loss(model(q_sample(x0, t, noise, ab), t, y), noise)
    per_sample = (model(q_sample(x0, t, noise, ab), t, y) - noise).pow(2).flatten(1).mean(1)
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


class _Sampler:
    """Shared state: the schedule as float64 tensors and the chosen timesteps."""

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        self.T = T
        self.betas = linear_beta_schedule(T, beta_start, beta_end)
        self.alphas_cumprod = alphas_cumprod(self.betas)
        self.timesteps = torch.arange(T - 1, -1, -1)

    def predict_x0(self, x_t, eps, t: int, clip: bool):
        ab = self.alphas_cumprod[t]
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clip else x0


class AncestralSampler(_Sampler):
    """The thesis' ancestral DDPM sampler (Ho et al. Alg. 2), one network call per t.

    ``clip_x0``: clip the predicted x_0 to [-1, 1] and use the posterior mean written in
    terms of x_0 (eq. 6), as diffusers' DDPMScheduler does with ``clip_sample=True``.
    ``noise_scale``: multiplies sigma_t z at each step (the thesis' ``noise_scale``).
    """

    def __init__(self, T=1000, beta_start=1e-4, beta_end=0.02, clip_x0: bool = True,
                 noise_scale: float = 1.0):
        super().__init__(T, beta_start, beta_end)
        self.clip_x0, self.noise_scale = clip_x0, noise_scale
        self.set_timesteps(None)

    def set_timesteps(self, num_steps: int | None = None):
        """All T steps by default (the thesis' chain). With fewer, the chain is respaced
        ('trailing' spacing, as in :class:`DDIMSampler`): between kept steps t > t' the
        posterior (eq. 6) uses beta = 1 - alpha_bar_t / alpha_bar_t', as diffusers'
        DDPMScheduler does with ``num_inference_steps < T``."""
        num_steps = self.T if num_steps is None else num_steps
        if not 0 < num_steps <= self.T:
            raise ValueError(f"num_steps must be in [1, {self.T}], got {num_steps}")
        self.timesteps = torch.round(torch.arange(self.T, 0, -self.T / num_steps)).long() - 1
        self.prev = torch.cat([self.timesteps[1:], torch.tensor([-1])])
        self._prev_of = dict(zip(self.timesteps.tolist(), self.prev.tolist()))

    def posterior(self, t: int):
        """Eq. (6): coefficients of mu = c0 x_0 + ct x_t and the variance of q(x_{t'}|x_t,x_0),
        t' the previous kept step (t - 1 with all T steps)."""
        t_prev = self._prev_of[t]
        ab = self.alphas_cumprod[t]
        ab_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        beta = 1 - ab / ab_prev
        c0 = beta * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * (1 - beta).sqrt() / (1 - ab)
        var = beta * (1 - ab_prev) / (1 - ab)
        return c0.item(), ct.item(), var.item()

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None):
        x0 = self.predict_x0(x_t, eps, t, self.clip_x0)
        c0, ct, var = self.posterior(t)
        mean = c0 * x0 + ct * x_t
        if self._prev_of[t] < 0:
            return mean
        z = torch.randn(x_t.shape, generator=generator,
                        device=generator.device if generator is not None else x_t.device).to(x_t.device)
        return mean + self.noise_scale * var ** 0.5 * z


class DDIMSampler(_Sampler):
    """Deterministic DDIM (Song et al. 2021, eta = 0) on a subset of the T steps.

    ``spacing='leading'`` matches diffusers' default (t = 0, k, 2k, ...); 'trailing'
    starts at t = T - 1, which is better with very few steps (Lin et al. 2024).
    """

    def __init__(self, T=1000, beta_start=1e-4, beta_end=0.02, clip_x0: bool = True,
                 spacing: str = "trailing"):
        super().__init__(T, beta_start, beta_end)
        if spacing not in ("leading", "trailing"):
            raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")
        self.clip_x0, self.spacing = clip_x0, spacing
        self.set_timesteps(50)

    def set_timesteps(self, num_steps: int):
        if not 0 < num_steps <= self.T:
            raise ValueError(f"num_steps must be in [1, {self.T}], got {num_steps}")
        if self.spacing == "leading":
            self.timesteps = (torch.arange(num_steps) * (self.T // num_steps)).flip(0)
        else:
            self.timesteps = torch.round(torch.arange(self.T, 0, -self.T / num_steps)).long() - 1
        # previous timestep of each step; -1 means "the clean image" (alpha_bar = 1)
        self.prev = torch.cat([self.timesteps[1:], torch.tensor([-1])])

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator=None):
        """Eq. (7): x_{t'} = sqrt(ab_t') x0_hat + sqrt(1 - ab_t') eps."""
        i = int((self.timesteps == t).nonzero()[0])
        t_prev = int(self.prev[i])
        ab_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x0 = self.predict_x0(x_t, eps, t, self.clip_x0)
        if self.clip_x0:  # recompute eps from the clipped x0 so the two stay consistent
            ab = self.alphas_cumprod[t]
            eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return ab_prev.sqrt().item() * x0 + (1 - ab_prev).sqrt().item() * eps


def build_sampler(name: str, T=1000, beta_start=1e-4, beta_end=0.02, clip_x0=True, noise_scale=1.0,
                  num_steps: int | None = None):
    if name == "ancestral":
        s = AncestralSampler(T, beta_start, beta_end, clip_x0=clip_x0, noise_scale=noise_scale)
        s.set_timesteps(num_steps)
    elif name == "ddim":
        s = DDIMSampler(T, beta_start, beta_end, clip_x0=clip_x0)
        s.set_timesteps(num_steps or 50)
    else:
        raise ValueError(f"unknown sampler {name!r}; expected 'ancestral' or 'ddim'")
    return s


def sample_loop(eps_fn, sampler, x: torch.Tensor, generator: torch.Generator | None = None,
                start_t: int | None = None, after_step=None, progress: bool = False,
                return_trajectory: tuple = ()):
    """The reverse process: apply ``sampler.step`` from x (at ``start_t``, default the first
    timestep) down to t = 0, with ``eps = eps_fn(x, t_batch)`` at each step.

    ``after_step(x, t_prev)`` may edit the state after each step (inpainting replaces the
    known pixels there). ``return_trajectory`` lists the timesteps at which to keep x_t.
    """
    traj = {}
    steps = [t for t in sampler.timesteps.tolist() if start_t is None or t <= start_t]
    prev = steps[1:] + [-1]
    for t, t_prev in zip(progress_bar(steps, disable=not progress, desc="sampling", leave=False), prev):
        tt = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        x = sampler.step(eps_fn(x, tt).float(), t, x, generator=generator)
        if after_step is not None:
            x = after_step(x, t_prev)
        if t in return_trajectory:
            traj[t] = x.detach().cpu()
    return (x, traj) if return_trajectory else x


@torch.no_grad()
def generate(model, sampler, labels: torch.Tensor, guidance_w: float, generator: torch.Generator,
             x_T_scale: float = 1.0, progress: bool = False, return_trajectory: tuple = (),
             clamp: bool = True):
    """Run ``sampler`` from noise x_T ~ N(0, x_T_scale^2 I) to x_0 for the given labels.

    ``generator`` (explicit, on CPU) makes the result reproducible for a given batch.
    ``return_trajectory`` lists timesteps at which to keep a copy of x_t (for figures).
    The state has the model's ``sample_shape`` (images by default; 2D points for the toy
    models of the theory chapters, which pass ``clamp=False``).
    """
    device = next(model.parameters()).device
    labels = labels.to(device)
    x = x_T_scale * torch.randn((len(labels), *getattr(model, "sample_shape", (1, 28, 28))),
                                generator=generator, device=generator.device).to(device)
    model.eval()
    if x.ndim == 4:
        model.to(memory_format=unet_memory_format(device))
        x = x.contiguous(memory_format=unet_memory_format(device))
    # bf16 network passes for images where the device runs them natively (artifacts.bf16);
    # the toy 2-D models stay float32; the sampler's arithmetic is float32 throughout.
    amp = autocast(device) if x.ndim == 4 else torch.autocast(device.type, enabled=False)

    def eps_fn(x, tt):
        with amp:
            return guided_eps(model, x, tt, labels, guidance_w)

    out = sample_loop(eps_fn, sampler, x, generator, progress=progress, return_trajectory=return_trajectory)
    x, traj = out if return_trajectory else (out, {})
    x = x.clamp(-1, 1).cpu() if clamp else x.cpu()
    return (x, traj) if return_trajectory else x


@torch.no_grad()
def reconstruct(model, sampler, x0: torch.Tensor, t_start: int, labels: torch.Tensor, guidance_w: float,
                generator: torch.Generator, progress: bool = False):
    """Theory chapter 7: noise real images to ``t_start`` with eq. (3), then run the reverse
    process from there. ``labels`` may be the null class (reconstruct without the class)."""
    device = next(model.parameters()).device
    ab = sampler.alphas_cumprod
    noise = torch.randn(x0.shape, generator=generator, device=generator.device)
    x_t = q_sample(x0.cpu(), torch.full((len(x0),), t_start), noise, ab).to(device)
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
    ab = sampler.alphas_cumprod
    mask = mask.to(device).float()
    known = x_known.to(device)
    labels = labels.to(device)
    x = torch.randn(known.shape, generator=generator, device=generator.device).to(device)

    def keep_known(x, t_prev):
        if t_prev < 0:
            noised = known
        else:
            noise = torch.randn(known.shape, generator=generator, device=generator.device).to(device)
            noised = q_sample(known, torch.full((len(known),), t_prev, device=device), noise, ab)
        return mask * noised + (1 - mask) * x

    model.eval()
    x = keep_known(x, int(sampler.timesteps[0]))
    x = sample_loop(lambda x, tt: guided_eps(model, x, tt, labels, guidance_w), sampler, x, generator,
                    after_step=keep_known, progress=progress)
    return x.clamp(-1, 1).cpu()
