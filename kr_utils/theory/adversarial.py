"""Stage: theory, chapter 9 (seed `004`): the autoencoder and the VAE in a 2-D latent space,
and the GAN game against WGAN-GP, unconditional, on real MNIST.

- :func:`latent_2d`: an autoencoder and a VAE of the same networks with a 2-D code;
  :func:`latent_grid` decodes a grid of the VAE's prior, :func:`interpolate` walks between two
  digits' codes;
- :func:`adversarial_runs`: the minimax GAN, the non-saturating GAN and WGAN-GP, the same
  networks, data and number of generator updates, with the teacher's class coverage of each
  generator's images over training (:func:`kr_utils.generators.class_coverage`).
"""
from __future__ import annotations

import dataclasses

import torch
from scipy.stats import norm

from .. import generators
from ..config import Profile
from ..data import fit_tensors
from ..models import predict_logits

ADVERSARIAL = {"gan_minimax": ("gan", True), "gan": ("gan", False), "wgan_gp": ("wgan_gp", False)}
ADVERSARIAL_NAMES = {"gan_minimax": "GAN, minimax loss", "gan": "GAN, non-saturating loss", "wgan_gp": "WGAN-GP"}


def latent_2d(cfg: Profile, device, seed: int | None = None) -> dict:
    """``{"ae": run, "vae": run}``: the VAE's fully connected networks with a 2-D code, trained
    for ``generators.latent2d_steps`` updates on the real training images, as an autoencoder
    (z = mu, reconstruction only) and as a VAE (the ELBO), unconditional."""
    seed = cfg.seed if seed is None else seed
    g = dataclasses.replace(cfg.generators, vae_latent=2)
    x, _ = fit_tensors(cfg, cfg.diffusion.train_subset, seed)
    return {kind: generators.train_generator(
                generators.GeneratorJob(kind, g.latent2d_steps, seed, log_every=max(1, g.latent2d_steps // 20),
                                        progress=False), x, None, g, device=device)
            for kind in ("ae", "vae")}


@torch.no_grad()
def latent_codes(model, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """The encoder's means mu(x) of images ``x`` (N x 2 for a 2-D code)."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[i:i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)])


@torch.no_grad()
def test_reconstruction(model, x: torch.Tensor, batch: int = 2000) -> dict:
    """Per image of ``x`` (model range), on images the model did not train on: the
    reconstruction cross-entropy decoded from the code mean, z = mu(x) (no draw; the term of
    :func:`kr_utils.generators.vae_loss`, summed over pixels), and the KL term of its code
    (:func:`kr_utils.generators.kl_divergence`; meaningful for a VAE). ``{"recon": (n,), "kl": (n,)}``."""
    device = next(model.parameters()).device
    recon, kl = [], []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device)
        mu, logvar = model.encode(xb)
        recon.append(torch.nn.functional.binary_cross_entropy_with_logits(
            model.decode_logits(mu), (xb + 1) / 2, reduction="none").flatten(1).sum(1).cpu())
        kl.append(generators.kl_divergence(mu, logvar).cpu())
    return {"recon": torch.cat(recon).numpy(), "kl": torch.cat(kl).numpy()}


@torch.no_grad()
def latent_grid(model, n: int = 15) -> torch.Tensor:
    """Decoded images of an n x n grid of the 2-D prior N(0, I): points at the Gaussian's
    quantiles 0.05..0.95 on each axis (Kingma & Welling's figure), row by row from the top."""
    q = torch.as_tensor(norm.ppf(torch.linspace(0.05, 0.95, n).numpy()), dtype=torch.float32)
    z = torch.stack([torch.stack([a, b]) for b in q.flip(0) for a in q])
    device = next(model.parameters()).device
    return model.decode(z.to(device)).cpu()


@torch.no_grad()
def interpolate(model, x_a: torch.Tensor, x_b: torch.Tensor, n: int = 10) -> torch.Tensor:
    """Images decoded along the straight line from mu(x_a) to mu(x_b), ``n`` points."""
    device = next(model.parameters()).device
    za, zb = model.encode(x_a[None].to(device))[0], model.encode(x_b[None].to(device))[0]
    t = torch.linspace(0, 1, n, device=device)[:, None]
    return model.decode((1 - t) * za + t * zb).cpu()


def coverage_monitor(teacher, num_classes: int, n: int, seed: int, device, threshold: float = 0.0):
    """``monitor(step, generator)`` for :func:`kr_utils.generators.train_generator`: the
    teacher's class coverage of ``n`` images (the same noise at every call), counting only the
    images it labels with confidence ``threshold`` or more (the synthetic set's filter, so that
    noise the teacher happens to call a class is not a class covered), a class counted where it
    holds at least 2% of all ``n`` images; the class entropy of the confident images, undefined
    (NaN) where fewer than 5% of the images are confident (a failed run is not a collapse); and
    the ``confident`` share of the images. The
    images are drawn in evaluation mode (``Generator.sample``: BatchNorm's running statistics,
    as the final samples are), which may lag a generator that is still moving fast."""
    def monitor(step, g):
        images = g.sample(torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(seed))
        conf, pred = predict_logits(teacher, images, device=device).softmax(1).max(1)
        sure = pred[conf >= threshold]
        entropy = generators.class_coverage(sure, num_classes)["entropy"] if len(sure) >= 0.05 * n else float("nan")
        counts = torch.bincount(sure.long(), minlength=num_classes)
        # a class counts where it holds 2% of all n images, so a few stray confident images are not classes
        return {"classes": int((counts >= 0.02 * n).sum()), "entropy": entropy,
                "confident": float((conf >= threshold).float().mean())}
    return monitor


def adversarial_runs(cfg: Profile, teacher, device, seed: int | None = None, coverage_n: int = 500) -> dict:
    """``{name: GeneratorRun}`` of :data:`ADVERSARIAL`: each unconditional, the same networks,
    real training images and ``generators.theory_steps`` generator updates (WGAN-GP makes
    ``n_critic`` critic updates per generator update), with the teacher's class coverage of its
    confident images (``classes``, ``entropy``, ``confident``: :func:`coverage_monitor` at
    ``synth.threshold``) in the history."""
    seed = cfg.seed if seed is None else seed
    g = cfg.generators
    x, _ = fit_tensors(cfg, cfg.diffusion.train_subset, seed)
    monitor = coverage_monitor(teacher, cfg.num_classes, coverage_n, seed, device, cfg.synth.threshold)
    return {name: generators.train_generator(
                generators.GeneratorJob(kind, g.theory_steps, seed, saturating=saturating,
                                        log_every=max(1, g.theory_steps // 20), monitor=monitor, progress=False),
                x, None, g, device=device)
            for name, (kind, saturating) in ADVERSARIAL.items()}
