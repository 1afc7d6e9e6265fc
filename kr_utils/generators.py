"""Stage: the other generators of seed `004` beside the diffusion model: a (conditional)
variational autoencoder, a (conditional) GAN and a (conditional) WGAN-GP, the losses that
define them, and their training.

Every generator maps noise to images in the model range [-1, 1] and has the call of the
synthetic set (:func:`kr_utils.synth.build_synthetic_set` with ``sampler=None``):
``model.sample(labels, generator)``, one network pass per image. ``num_classes=0`` makes a
generator unconditional (the theory chapter's GAN against WGAN-GP, and its 2-D latent VAE).

The equations (book, theory chapter 9) and the functions that implement them:

- the VAE's loss: :func:`vae_loss` = reconstruction (the binary cross-entropy of the pixels,
  summed; a Bernoulli log-likelihood only for binary pixels, so on grey ones not an ELBO) +
  :func:`kl_divergence`, the closed form KL(N(mu, sigma^2) || N(0, I)); the
  reparameterisation z = mu + sigma * eps in :meth:`VAE.forward`;
- the GAN game (real = 1, fake = 0): :func:`gan_losses`, the discriminator's binary cross
  entropy and the generator's non-saturating loss -log D(G(z)) (``saturating=True``: the
  minimax log(1 - D(G(z))));
- WGAN-GP: :func:`wgan_losses`, the critic's E[f(fake)] - E[f(real)] (labels +-1) plus
  lambda * :func:`gradient_penalty`, E[(||grad f(x_hat)|| - 1)^2] on points x_hat between
  real and fake; the generator's -E[f(G(z))].

:func:`train_generator` trains any of them (``n_critic`` critic updates per generator update
for WGAN-GP) and records the curves the chapters draw.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import GeneratorsConfig
from .data import Batcher
from .live import progress as progress_bar

KINDS = ("ae", "vae", "gan", "wgan_gp")  # "ae": the VAE's networks as a plain autoencoder (z = mu, no KL)


# ------------------------------------------------------------------------------------ losses

def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, in closed form:
    -1/2 sum(1 + logvar - mu^2 - exp(logvar))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def vae_loss(logits: torch.Tensor, x01: torch.Tensor, mu, logvar, beta: float = 1.0) -> tuple[torch.Tensor, dict]:
    """The VAE's loss per image, averaged over the batch: the reconstruction term (binary cross
    entropy of the decoder's pixel logits against pixels in [0, 1], summed over pixels; the
    negative Bernoulli log-likelihood for binary pixels, and on grey ones a cross-entropy whose
    floor is the pixels' own entropy, not 0) plus ``beta`` times :func:`kl_divergence`: the
    negative ELBO only for binary images."""
    recon = F.binary_cross_entropy_with_logits(logits, x01, reduction="none").flatten(1).sum(1)
    kl = kl_divergence(mu, logvar)
    return (recon + beta * kl).mean(), {"recon": recon.mean().detach(), "kl": kl.mean().detach()}


def gan_losses(d_real: torch.Tensor, d_fake: torch.Tensor, saturating: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The GAN game on discriminator logits: the discriminator's binary cross entropy with
    real = 1 and fake = 0, and the generator's loss on the same fakes: non-saturating
    -log D(G(z)) by default, the minimax log(1 - D(G(z))) with ``saturating``. For the
    discriminator's update the caller passes logits of fakes made without gradient (the
    generator stays fixed); for the generator's, logits of fakes with it."""
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if saturating:
        g_loss = -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))  # E log(1 - D)
    else:
        g_loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))  # -E log D
    return d_loss, g_loss


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat = e * real + (1 - e) * fake, e ~ U(0, 1) per
    image (Gulrajani et al. 2017): zero for a critic whose gradient has unit norm everywhere."""
    e = torch.rand((len(real),) + (1,) * (real.ndim - 1), generator=generator, device=real.device)
    x_hat = (e * real + (1 - e) * fake.detach()).requires_grad_(True)
    out = critic(x_hat, y)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def wgan_losses(critic, real, fake, y, gp_lambda: float, generator: torch.Generator | None = None):
    """The critic's loss E[f(fake)] - E[f(real)] + gp_lambda * :func:`gradient_penalty` and
    the Wasserstein estimate E[f(real)] - E[f(fake)] it maximises (a float)."""
    f_real, f_fake = critic(real, y), critic(fake.detach(), y)
    gp = gradient_penalty(critic, real, fake, y, generator)
    w = f_real.mean() - f_fake.mean()
    return -w + gp_lambda * gp, w.detach(), gp.detach()


# ------------------------------------------------------------------------------------ networks

class _Conditioned(nn.Module):
    """Label handling shared by the generators: ``num_classes=0`` is unconditional."""

    def _labels(self, y, n, device):
        if self.num_classes == 0:
            return None
        if y is None:
            raise ValueError(f"this {type(self).__name__} is conditional ({self.num_classes} classes): pass labels")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {int(y.min())}..{int(y.max())}")
        return y.to(device)

    @property
    def null_class(self) -> int:  # the synthetic set's number of classes (as the U-Net's)
        return self.num_classes


class VAE(_Conditioned):
    """A fully connected (conditional) VAE: encoder [x, onehot(y)] -> hidden -> (mu, logvar)
    of a ``latent``-dimensional Gaussian; decoder [z, onehot(y)] -> hidden -> pixel logits."""

    def __init__(self, latent: int = 16, hidden: int = 512, num_classes: int = 10, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = dict(latent=latent, hidden=hidden, num_classes=num_classes, image_shape=tuple(image_shape))
        self.latent, self.num_classes, self.image_shape = latent, num_classes, tuple(image_shape)
        d = math.prod(image_shape)
        self.encoder = nn.Sequential(nn.Linear(d + num_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent + num_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU(), nn.Linear(hidden, d))

    def _cond(self, h, y):
        return h if y is None else torch.cat([h, F.one_hot(y, self.num_classes).to(h.dtype)], 1)

    def encode(self, x, y=None):
        """(mu, logvar) of q(z | x, y) for images in [-1, 1]."""
        y = self._labels(y, len(x), x.device)
        mu, logvar = self.encoder(self._cond(x.flatten(1), y)).chunk(2, 1)
        return mu, logvar.clamp(-10, 10)

    def decode_logits(self, z, y=None):
        y = self._labels(y, len(z), z.device)
        return self.decoder(self._cond(z, y)).view(len(z), *self.image_shape)

    def decode(self, z, y=None):
        """Images in [-1, 1]: the decoder's Bernoulli means mapped from [0, 1]."""
        return 2 * torch.sigmoid(self.decode_logits(z, y)) - 1

    def forward(self, x, y=None, generator: torch.Generator | None = None, stochastic: bool = True):
        """Pixel logits of a reconstruction through z = mu + sigma * eps (the reparameterisation),
        with mu and logvar; ``stochastic=False``: through z = mu (a plain autoencoder)."""
        mu, logvar = self.encode(x, y)
        if not stochastic:
            return self.decode_logits(mu, y), mu, logvar
        eps = torch.randn(mu.shape, generator=generator, device=mu.device) if generator is not None else torch.randn_like(mu)
        return self.decode_logits(mu + (0.5 * logvar).exp() * eps, y), mu, logvar

    @torch.no_grad()
    def sample(self, labels, generator: torch.Generator):
        device = next(self.parameters()).device
        z = torch.randn((len(labels), self.latent), generator=generator, device=generator.device).to(device)
        return self.eval().decode(z, labels.to(device) if self.num_classes else None).cpu()


class Generator(_Conditioned):
    """A small DCGAN generator: [z, embed(y)] -> (2w, 7, 7) -> (w, 14, 14) -> (1, 28, 28), tanh."""

    def __init__(self, latent: int = 64, width: int = 32, num_classes: int = 10, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = dict(latent=latent, width=width, num_classes=num_classes, image_shape=tuple(image_shape))
        self.latent, self.num_classes, self.image_shape = latent, num_classes, tuple(image_shape)
        c, s = image_shape[0], image_shape[1] // 4
        self.embed = nn.Embedding(num_classes, latent) if num_classes else None
        self.fc = nn.Sequential(nn.Linear(latent, 2 * width * s * s), nn.BatchNorm1d(2 * width * s * s), nn.ReLU())
        self.net = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.ConvTranspose2d(width, c, 4, 2, 1), nn.Tanh())
        self._s, self._w = s, width

    def forward(self, z, y=None):
        y = self._labels(y, len(z), z.device)
        h = z if y is None else z * self.embed(y)  # multiplicative conditioning of the noise
        return self.net(self.fc(h).view(len(z), 2 * self._w, self._s, self._s))

    @torch.no_grad()
    def sample(self, labels, generator: torch.Generator):
        device = next(self.parameters()).device
        z = torch.randn((len(labels), self.latent), generator=generator, device=generator.device).to(device)
        return self.eval()(z, labels.to(device) if self.num_classes else None).cpu()


class Critic(_Conditioned):
    """A projection critic / discriminator (Miyato & Koyama 2018): conv features h(x), and
    f(x, y) = w . h(x) + embed(y) . h(x). No batch normalisation, so that the gradient penalty
    acts per image."""

    def __init__(self, width: int = 32, num_classes: int = 10, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = dict(width=width, num_classes=num_classes, image_shape=tuple(image_shape))
        self.num_classes = num_classes
        c, s = image_shape[0], image_shape[1] // 4
        self.features = nn.Sequential(nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
        self.out = nn.Linear(2 * width * s * s, 1)
        self.embed = nn.Embedding(num_classes, 2 * width * s * s) if num_classes else None
        if self.embed is not None:  # start unconditional: a unit-normal projection swamps w . h(x)
            nn.init.zeros_(self.embed.weight)

    def forward(self, x, y=None):
        y = self._labels(y, len(x), x.device)
        h = self.features(x)
        out = self.out(h).squeeze(1)
        return out if y is None else out + (self.embed(y) * h).sum(1)


def build(kind: str, cfg: GeneratorsConfig, num_classes: int, image_shape=(1, 28, 28)):
    """The networks of ``kind``: a :class:`VAE`, or a :class:`Generator` with its :class:`Critic`."""
    if kind not in KINDS:
        raise ValueError(f"unknown generator kind {kind!r}; expected one of {KINDS}")
    if kind in ("ae", "vae"):
        return VAE(cfg.vae_latent, cfg.vae_hidden, num_classes, image_shape), None
    return (Generator(cfg.latent, cfg.width, num_classes, image_shape),
            Critic(cfg.width, num_classes, image_shape))


# ------------------------------------------------------------------------------------ training

@dataclass
class GeneratorRun:
    """What :func:`train_generator` returns: the generator (the VAE itself for ``vae``), the
    critic, the curves (``history``: lists keyed by name, one entry per ``log_every`` updates,
    with ``step``), the training time and, apart from it, the time the ``monitor`` took."""

    model: nn.Module
    critic: nn.Module | None
    history: dict = field(default_factory=dict)
    train_time_s: float = 0.0
    monitor_time_s: float = 0.0


def _adam(params, lr, betas):
    return torch.optim.Adam(params, lr=lr, betas=betas)


@dataclass(frozen=True)
class GeneratorJob:
    """One run of :func:`train_generator`: the generator's ``kind`` (:data:`KINDS`; ``ae``
    trains the VAE's networks on the reconstruction term alone, through z = mu), its ``steps``
    generator updates, its ``seed``, ``num_classes`` (0: unconditional) and, for the GAN, the
    ``saturating`` generator loss of the minimax game (:func:`gan_losses`). Every ``log_every``
    updates the history gets a new entry, with whatever ``monitor(step, generator)`` returns (a
    dict of floats: class coverage in theory chapter 9); ``progress``: show a progress bar."""

    kind: str
    steps: int
    seed: int
    num_classes: int = 0
    saturating: bool = False
    log_every: int = 50
    monitor: Callable | None = None
    progress: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown generator kind {self.kind!r}; expected one of {KINDS}")
        if self.steps < 1:
            raise ValueError(f"steps must be a positive number of generator updates, got {self.steps}")


def train_generator(job: GeneratorJob, images: torch.Tensor, labels: torch.Tensor | None, cfg: GeneratorsConfig,
                    *, device) -> GeneratorRun:
    """Train the generator of ``job`` (:class:`GeneratorJob`) on ``images`` (model range
    [-1, 1], N x C x H x W) for ``job.steps`` generator updates of ``cfg.batch_size`` images;
    ``labels`` are used when ``job.num_classes`` > 0. WGAN-GP makes ``cfg.n_critic`` critic
    updates per generator update, each on a fresh real batch, with the penalty weight
    ``cfg.gp_lambda``.

    Every ``job.log_every`` updates the history gets the mean of the losses since the last
    entry, the discriminator's mean output on real and fake images (sigmoid for the GAN, raw
    critic values for WGAN-GP), the Wasserstein estimate and the penalty, and what the
    monitor returns."""
    kind, steps, seed, num_classes = job.kind, job.steps, job.seed, job.num_classes
    log_every, monitor, saturating = job.log_every, job.monitor, job.saturating
    if num_classes and labels is None:
        raise ValueError("a conditional generator (num_classes > 0) needs the images' labels")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    images = images.to(device)
    labels = labels.to(device) if (labels is not None and num_classes) else None
    model, critic = build(kind, cfg, num_classes, tuple(images.shape[1:]))
    model.to(device).train()
    if critic is not None:
        critic.to(device).train()
    bs = min(cfg.batch_size, len(images))
    batcher = Batcher(len(images), bs, generator=gen, drop_last=True)
    history: dict[str, list] = {"step": []}
    acc: dict[str, list] = {}

    def note(**values):
        for k, v in values.items():
            acc.setdefault(k, []).append(float(v))

    if kind in ("ae", "vae"):
        opt = _adam(model.parameters(), cfg.vae_lr, (0.9, 0.999))
    elif kind == "gan":
        opt_g, opt_d = _adam(model.parameters(), cfg.gan_lr, (0.5, 0.999)), _adam(critic.parameters(), cfg.gan_lr, (0.5, 0.999))
    else:
        opt_g, opt_d = _adam(model.parameters(), cfg.wgan_lr, (0.0, 0.9)), _adam(critic.parameters(), cfg.wgan_lr, (0.0, 0.9))

    def real_batch():
        idx = next(batcher).to(device)
        return images[idx], (labels[idx] if labels is not None else None)

    def noise(n):
        return torch.randn((n, model.latent), generator=gen).to(device)

    start, monitor_s = time.perf_counter(), 0.0
    bar = progress_bar(total=steps, desc=kind, disable=not job.progress, mininterval=2, leave=False)
    for step in range(1, steps + 1):
        if kind in ("ae", "vae"):
            x, y = real_batch()
            logits, mu, logvar = model(x, y, None, stochastic=kind == "vae")
            loss, parts = vae_loss(logits, (x + 1) / 2, mu, logvar, cfg.vae_beta if kind == "vae" else 0.0)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            note(loss=loss.detach(), **parts)
        else:
            for _ in range(cfg.n_critic if kind == "wgan_gp" else 1):
                x, y = real_batch()
                with torch.no_grad():
                    fake = model(noise(len(x)), y)
                if kind == "gan":
                    d_real, d_fake = critic(x, y), critic(fake, y)
                    d_loss, _ = gan_losses(d_real, d_fake)
                    note(d_real=torch.sigmoid(d_real).mean().detach(), d_fake=torch.sigmoid(d_fake).mean().detach())
                else:
                    d_loss, w, gp = wgan_losses(critic, x, fake, y, cfg.gp_lambda, None)
                    note(wasserstein=w, gp=gp)
                opt_d.zero_grad(set_to_none=True); d_loss.backward(); opt_d.step()
                note(d_loss=d_loss.detach())
            y = labels[torch.randint(len(labels), (bs,), generator=gen).to(device)] if labels is not None else None
            fake = model(noise(bs), y)
            out = critic(fake, y)
            g_loss = gan_losses(out, out, saturating)[1] if kind == "gan" else -out.mean()
            opt_g.zero_grad(set_to_none=True); g_loss.backward(); opt_g.step()
            note(g_loss=g_loss.detach())
        bar.update(1)
        if step % log_every == 0 or step == steps:
            history["step"].append(step)
            for k, v in acc.items():
                history.setdefault(k, []).append(sum(v) / len(v))
            acc.clear()
            if monitor is not None:
                t_mon = time.perf_counter()
                model.eval()
                for k, v in monitor(step, model).items():
                    history.setdefault(k, []).append(float(v))
                model.train()
                monitor_s += time.perf_counter() - t_mon
    bar.close()
    model.eval()
    if critic is not None:
        critic.eval()
    return GeneratorRun(model=model, critic=critic, history=history, monitor_time_s=monitor_s,
                        train_time_s=time.perf_counter() - start - monitor_s)  # the monitor's time is not training


def class_coverage(predicted, num_classes: int, min_share: float = 0.02) -> dict:
    """How many classes a generator's images cover, from the teacher's predicted classes:
    ``classes`` with at least ``min_share`` of the images, and the normalised entropy of the
    class histogram (1: all classes equally often; 0: one class only, mode collapse)."""
    counts = torch.bincount(torch.as_tensor(predicted).long(), minlength=num_classes).float()
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"classes": int((p >= min_share).sum()),
            "entropy": max(0.0, float(-(nz * nz.log()).sum() / math.log(num_classes)))}  # no -0.0
