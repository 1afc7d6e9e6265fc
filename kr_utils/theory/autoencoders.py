"""Stage: theory, chapter 6. The physics thesis' (`001` §5) epsilon-model: one
single-hidden-layer ReLU autoencoder per time step, trained separately, against one shared
single-hidden-layer network that takes the time step as an input.

Both act on flattened images (784 values in [-1, 1]) and have the ``model(x, t)`` call of
the samplers' ``eps_fn`` (:func:`kr_utils.diffusion.sample_loop`).

``output="x0"`` (the default) makes the autoencoder a *denoising* autoencoder: it returns
a clean digit D(x_t) and epsilon follows from eq. (3),
eps = (x_t - sqrt(alpha_bar_t) D(x_t)) / sqrt(1 - alpha_bar_t). ``output="eps"`` returns
epsilon directly, as `001` does; with fewer hidden units than pixels it cannot, because
near t = T epsilon is almost x_t itself and an identity map does not fit through the
bottleneck (chapter 6 measures this).
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batcher
from ..diffusion import NoiseSchedule, sample_loop
from ..fit import FitOptions, fit
from ..models import count_parameters, timestep_embedding
from .analytic import elbo_weights
from .toy import energy_distance


def short_schedule(T: int) -> NoiseSchedule:
    """Eq. (1) rescaled to T steps (:meth:`kr_utils.diffusion.NoiseSchedule.rescaled`), so a
    short chain still ends in noise, with a smaller alpha_bar_T than T = 1000's and large last
    steps (that method's docstring gives both)."""
    return NoiseSchedule.rescaled(T)


class _Parametrised(nn.Module):
    """Shared plumbing: the schedule as a buffer and the x0 / eps output conventions."""

    def _setup(self, T: int, output: str):
        if output not in ("x0", "eps"):
            raise ValueError(f"output must be 'x0' or 'eps', got {output!r}")
        self.T, self.output = T, output
        self.register_buffer("alphas_cumprod", short_schedule(T).alphas_cumprod.float())

    def to_eps(self, raw: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.output == "eps":
            return raw
        ab = self.alphas_cumprod[t].reshape(-1, *([1] * (x.ndim - 1)))
        return (x - ab.sqrt() * raw) / (1 - ab).sqrt()


class PerStepAutoencoders(_Parametrised):
    """T independent networks eps^(t)(x) = W2_t relu(W1_t x + b1_t) + b2_t, stored as stacked
    tensors so all T can be trained in one batched matrix product."""

    def __init__(self, T: int, hidden: int, dim: int = 784, output: str = "x0"):
        super().__init__()
        self._setup(T, output)
        self.config = dict(T=T, hidden=hidden, dim=dim, output=output)
        b1, b2 = 1 / math.sqrt(dim), 1 / math.sqrt(hidden)  # nn.Linear's default init, per step
        self.W1 = nn.Parameter(torch.empty(T, dim, hidden).uniform_(-b1, b1))
        self.b1 = nn.Parameter(torch.empty(T, 1, hidden).uniform_(-b1, b1))
        self.W2 = nn.Parameter(torch.empty(T, hidden, dim).uniform_(-b2, b2))
        self.b2 = nn.Parameter(torch.empty(T, 1, dim).uniform_(-b2, b2))

    def all_steps(self, x_t: torch.Tensor) -> torch.Tensor:
        """x_t of shape (T, B, dim): network t applied to row t (its raw output)."""
        return torch.baddbmm(self.b2, F.relu(torch.baddbmm(self.b1, x_t, self.W1)), self.W2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not bool((t == t[0]).all()):
            raise ValueError("PerStepAutoencoders.forward expects one time step per batch")
        k = int(t[0])
        return self.to_eps(F.relu(x @ self.W1[k] + self.b1[k]) @ self.W2[k] + self.b2[k], x, t)


class SharedAutoencoder(_Parametrised):
    """One network for every step: eps(x, t) = W2 relu(W1 [x, emb(t)] + b1) + b2, with the
    fixed sinusoidal embedding of t (no extra layer, so it stays single-hidden-layer)."""

    def __init__(self, T: int, hidden: int, dim: int = 784, emb: int = 32, output: str = "x0"):
        super().__init__()
        self._setup(T, output)
        self.config = dict(T=T, hidden=hidden, dim=dim, emb=emb, output=output)
        self.emb = emb
        self.enc = nn.Linear(dim + emb, hidden)
        self.dec = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.to_eps(self.raw(x, t), x, t)

    def raw(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.dec(F.relu(self.enc(torch.cat([x, timestep_embedding(t, self.emb)], 1))))


def train_autoencoder(model: nn.Module, x0: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                      seed: int = 0, progress: bool = True, weights: torch.Tensor | None = None) -> dict:
    """Train either model by mean squared error on its output: epsilon (L_simple, eq. 4) or,
    for ``output="x0"``, the clean digit. The per-step model sees every step of each batch
    (T x batch pairs per update, each network only its own step); the shared model a
    uniformly drawn step per image. ``weights`` (one per step, rescaled to mean 1, e.g. the
    ELBO's :func:`kr_utils.theory.analytic.elbo_weights`) weight each step's error: `001`'s
    Fig. 6. Trains on the device of ``model`` (random draws from a CPU generator, the same on
    every device). Returns losses and wall time."""
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    per_step = isinstance(model, PerStepAutoencoders)
    T, dev = model.T, next(model.parameters()).device
    x0 = x0.to(dev)
    schedule = short_schedule(T)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if weights is not None:
        if len(weights) != T:
            raise ValueError(f"weights must have one value per step (T={T}), got {len(weights)}")
        weights = (weights / weights.mean()).float().to(dev)

    def loss_fn(idx):
        x = x0[idx.to(dev)]
        if per_step:
            xs = x.expand(T, -1, -1)
            t = torch.arange(T, device=dev)[:, None].expand(T, batch_size)
            noise = torch.randn(xs.shape, generator=gen).to(dev)
            x_t = schedule.q_sample(xs.reshape(T * batch_size, -1), t.reshape(-1), noise.reshape(T * batch_size, -1))
            target = noise if model.output == "eps" else xs
            err = (model.all_steps(x_t.reshape(T, batch_size, -1)) - target).pow(2).mean((1, 2))  # one per step
            return err.mean() if weights is None else (weights * err).mean()
        t = torch.randint(0, T, (batch_size,), generator=gen).to(dev)
        noise = torch.randn(x.shape, generator=gen).to(dev)
        target = noise if model.output == "eps" else x
        err = (model.raw(schedule.q_sample(x, t, noise), t) - target).pow(2).mean(1)  # one per image
        return err.mean() if weights is None else (weights[t] * err).mean()

    t0 = time.perf_counter()
    run = fit(model, loss_fn, Batcher(len(x0), batch_size, gen, replace=True), opt,
              FitOptions(steps=steps, desc=type(model).__name__, progress=progress),
              scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps))
    return {"losses": run.losses, "train_s": time.perf_counter() - t0}


def disjoint_draws(ref: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random draws of ``n`` rows of ``ref``: the held-out set that samples are
    compared with, and a second real draw whose distance to it is the floor. Two draws that
    shared rows would put the floor too low, so ``2 n`` rows are needed."""
    if 2 * n > len(ref):
        raise ValueError(f"theory.ae_samples={n}: two disjoint draws need {2 * n} reference digits, "
                         f"there are {len(ref)}")
    perm = torch.randperm(len(ref), generator=torch.Generator().manual_seed(seed))
    return ref[perm[:n]], ref[perm[n:2 * n]]


def chapter_models(T: int, hidden: int, shared_hidden: int, steps: int, shared_steps: int,
                   betas: torch.Tensor) -> dict[str, tuple[nn.Module, int, torch.Tensor | None]]:
    """Chapter T6's four models, ``{name: (model, updates, step weights)}``: per-step denoising
    autoencoders (``output="x0"``), per-step networks that output epsilon, a copy of those
    (the same initial weights) trained on the ELBO's weights of the chain ``betas``
    (:func:`kr_utils.theory.analytic.elbo_weights`, eq. T3.6), and one shared network of
    ``shared_hidden`` units. The epsilon model is built first, as the chapter always did, so
    that a seed of the global generator gives the same initial weights."""
    eps_model = PerStepAutoencoders(T, hidden, output="eps")
    return {"per-step, outputs x0": (PerStepAutoencoders(T, hidden), steps, None),
            "per-step, outputs eps": (eps_model, steps, None),
            "per-step, outputs eps, ELBO weights": (copy.deepcopy(eps_model), steps, elbo_weights(betas)),
            "shared, outputs x0": (SharedAutoencoder(T, shared_hidden), shared_steps, None)}


def compare(specs: dict, x0: torch.Tensor, ref: torch.Tensor, sampler, *, batch_size: int, n_samples: int,
            seed: int, device) -> tuple[dict, dict]:
    """Train each model of ``specs`` (:func:`chapter_models`) on ``x0`` with
    :func:`train_autoencoder` (Adam, lr 2e-3 for per-step networks, 1e-3 for a shared one), on
    ``device``, in place; draw ``n_samples`` from each with ``sampler``, every model from the
    same starting noise (``seed``), keeping x_t at every step; and measure the samples' energy
    distance (:func:`kr_utils.theory.toy.energy_distance`) to the held-out digits ``ref``.
    Returns ``(rows, samples)``: per model its parameters, hidden units, updates, training and
    sampling time, final training loss (mean of the last 20 updates) and energy distance; and
    its samples clamped to [-1, 1] with their trajectory ``{t: x_t}``."""
    rows, samples = {}, {}
    for name, (model, steps, weights) in specs.items():
        model = model.to(device)
        per_step = isinstance(model, PerStepAutoencoders)
        run = train_autoencoder(model, x0, steps=steps, batch_size=batch_size, lr=2e-3 if per_step else 1e-3,
                                seed=seed, weights=weights)
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            out, traj = sample_loop(lambda x, t: model(x, t), sampler,
                                    torch.randn(n_samples, model.config["dim"], generator=gen).to(device),
                                    gen, return_trajectory=tuple(range(model.T)))
        out = out.cpu().clamp(-1, 1)
        samples[name] = (out, traj)
        last = run["losses"][-20:]
        rows[name] = {"parameters": count_parameters(model), "hidden units": model.config["hidden"],
                      "updates": steps, "training time (s)": run["train_s"], "final training loss": sum(last) / len(last),
                      "sampling time (s)": time.perf_counter() - t0, "energy distance to test 0/1": energy_distance(out, ref)}
    return rows, samples


ED = "energy distance to test 0/1"  # the column of :func:`compare`'s rows
T6_KEYS = {"per": "per-step, outputs x0", "eps": "per-step, outputs eps", "shared": "shared, outputs x0",
           "elbo": "per-step, outputs eps, ELBO weights"}  # glue-name part -> model


def flat_weights(model: nn.Module) -> torch.Tensor:
    """A model's weights as one vector (on the CPU)."""
    return torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def cost_texts(cost, floor: float, noise: float) -> dict:
    """Theory chapter 6's numbers of each model (``cost``: :func:`compare`'s rows as a frame):
    its energy distance to the test digits, parameters and training time, with the floor of
    two real draws and clipped Gaussian noise for reference."""
    out = {"t6_ed_floor": f"{floor:.2f}", "t6_ed_noise": f"{noise:.2f}"}
    for key, name in T6_KEYS.items():
        out |= {f"t6_ed_{key}": f"{cost.loc[name, ED]:.2f}", f"t6_params_{key}": f"{int(cost.loc[name, 'parameters']):,d}",
                f"t6_time_{key}": f"{cost.loc[name, 'training time (s)']:.0f} s"}
    return out


def weighting_moved(specs: dict, start: torch.Tensor) -> float:
    """How far the ELBO-weighted copy ended from the plain epsilon model, relative to how far
    that one moved from their shared start ``start`` (:func:`flat_weights`): 0, the same model."""
    ends = [flat_weights(specs[T6_KEYS[k]][0]) for k in ("eps", "elbo")]
    return ((ends[0] - ends[1]).norm() / (ends[0] - start.cpu()).norm()).item()


def weighting_texts(specs: dict, start: torch.Tensor, T: int, hidden: int) -> dict:
    """Theory chapter 6's sentences on the ELBO weighting and the short schedule: how far the
    ELBO-weighted copy ended from the plain epsilon model, relative to how far that one moved
    from their shared start (0: the same model), the ELBO weights' largest-to-smallest ratio,
    the schedule's last alpha_bar against 1,000 steps', and the profile's width."""
    moved = weighting_moved(specs, start)
    elbo = specs[T6_KEYS["elbo"]][2]
    return {"t6_weighting_moved": f"{100 * moved:.1f}%", "t6_elbo_ratio": f"{(elbo.max() / elbo.min()).item():,.0f}",
            "t6_hidden": hidden, "t6_abar_T": f"{float(short_schedule(T).alphas_cumprod[-1]):.1e}",
            "t6_abar_1000": f"{float(short_schedule(1000).alphas_cumprod[-1]):.1e}",
            "t6_beta_T": f"{float(short_schedule(T).betas[-1]):.3g}",
            "t6_width": f"this profile runs the chapter at {hidden:,d} hidden units, "
                        + ("as wide as that" if hidden >= 1700 else "narrower")}
