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

import numpy as np
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


def run_summary(runs: dict) -> dict:
    """Per run of :func:`adversarial_runs`, its last coverage check (classes, class entropy,
    share of confident images), its lowest class entropy (NaN where never defined), its
    training time and the discriminator's last mean output on generated images (None for WGAN-GP)."""
    out = {}
    for name, r in runs.items():
        h = r.history
        out[name] = {"final_classes": h["classes"][-1], "final_entropy": h["entropy"][-1],
                     "final_confident": h["confident"][-1],
                     "min_entropy": float(np.nanmin(h["entropy"])) if not np.all(np.isnan(h["entropy"])) else float("nan"),
                     "train_time_s": r.train_time_s, "final_d_fake": h["d_fake"][-1] if "d_fake" in h else None}
    return out


def adversarial_texts(summary: dict, wgan: dict) -> dict:
    """Theory chapter 9's sentences on the three adversarial runs (``summary``:
    :func:`run_summary`; ``wgan``: WGAN-GP's history): each run's state at the end (a failed
    run where the teacher is sure of under 5% of its images, a collapse where the class entropy
    is under 0.5), WGAN-GP's Wasserstein estimate and its best coverage check against its last,
    and whether the minimax GAN's discriminator ends lower than the non-saturating one's."""
    out = {}
    for name, s in summary.items():
        out |= {f"t9_{name}_classes": int(s["final_classes"]), f"t9_{name}_confident": f"{100 * s['final_confident']:.0f}%",
                f"t9_{name}_state": "a failed run, not a collapse: the teacher is sure of almost none of its images"
                if s["final_confident"] < 0.05 else ("a collapse onto few classes" if s["final_entropy"] < 0.5 else
                                                     "no collapse (class entropy of at least 0.5)"),
                f"t9_{name}_entropy": "undefined: too few confident images" if np.isnan(s["final_entropy"])
                else f"{s['final_entropy']:.2f}",
                f"t9_{name}_time": f"{s['train_time_s']:.0f} s"}
        if s["final_d_fake"] is not None:
            out[f"t9_{name}_dfake"] = f"{s['final_d_fake']:.2f}"
    w, conf = wgan["wasserstein"], wgan["confident"]
    best = int(np.argmax(conf))  # seed 004's "local optimum in the intermediate epochs"
    peak = ("its last check is its best, so this run shows no such intermediate optimum" if best == len(conf) - 1 else
            "an intermediate optimum as in the seed, one run and one reading, not a measured effect"
            if conf[best] - conf[-1] >= 0.05 else "the peak lies within 5 points of the last check, so no clear "
            "intermediate optimum")
    minimax = summary["gan_minimax"]["final_d_fake"] < summary["gan"]["final_d_fake"]
    return out | {"t9_wgan_w_first": f"{w[0]:.2f}", "t9_wgan_w_last": f"{w[-1]:.2f}",
                  "t9_wgan_w_verb": "fell" if w[-1] < w[0] else "rose",
                  "t9_wgan_peak": f"{100 * conf[best]:.0f}% at update {wgan['step'][best]}", "t9_wgan_peak_verdict": peak,
                  "t9_minimax_verdict": "lower than" if minimax else "no lower than"}


def latent_texts(per_image: dict, confident: dict, grid_tol: float) -> tuple[dict, dict]:
    """Theory chapter 9's sentences on the 2-D codes: the autoencoder's and the VAE's mean
    reconstruction error on the real test digits (``per_image``: :func:`test_reconstruction`
    of each), the VAE's minus the autoencoder's, paired over the digits with a normal 95%
    half-width, and whether the teacher is sure of more of either's decoded prior grid
    (``confident``: shares; a difference within ``grid_tol`` is no difference). Returns the
    texts and the losses it records."""
    losses = {k: {"test_recon": float(v["recon"].mean()), "test_kl": float(v["kl"].mean()) if k == "vae" else None}
              for k, v in per_image.items()}
    diff = per_image["vae"]["recon"] - per_image["ae"]["recon"]  # paired over the test digits
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    recon = ("the VAE pays in reconstruction for a code that stays near its prior" if diff.mean() > half
             else "the VAE's code, kept near its prior, costs it nothing measurable in reconstruction here"
             if diff.mean() > -half else "the VAE reconstructs better than the autoencoder here")
    gap = confident["vae"] - confident["ae"]
    prior = {1: "The teacher's reading agrees with that: the VAE's prior gives more digits it is sure of",
             0: "The teacher's reading does not tell the two apart on this grid: it is sure of as many of either model's "
                "images",
             -1: "The teacher's reading does not show the VAE as the better generator from this grid: it is sure of more "
                 "of the autoencoder's images. What the VAE changes is where the codes lie, so that a draw from the prior "
                 "lands among them; it does not make the images decoded there better at this budget"}[
        0 if abs(gap) <= grid_tol else int(np.sign(gap))]
    return ({"t9_ae_recon": f"{losses['ae']['test_recon']:.0f}", "t9_vae_recon": f"{losses['vae']['test_recon']:.0f}",
             "t9_vae_kl": f"{losses['vae']['test_kl']:.1f}", "t9_recon_diff": f"{diff.mean():+.1f} ± {half:.1f}",
             "t9_recon_verdict": recon, "t9_prior_verdict": prior}, losses)
