"""Theory: the small computations behind the theory chapters that are not part of
the pipeline: latent-variable models in 1D (chapter 1), the forward chain iterated step by
step and the posterior checked by Monte Carlo (chapters 2-3), the weights of the full ELBO
(chapter 3) and the Curie-Weiss potential of a diffusion (chapter 8).

Everything here is checked by ``tests/test_theory.py``, so the chapters' numerical checks
fail when the mathematics breaks.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, stats

from ..diffusion import alphas_cumprod

# --------------------------------------------------------------- chapter 1: latent variables


def sample_gmm(weights, means, stds, n: int, rng: np.random.Generator):
    """Ancestral sampling through the latent variable: z ~ Categorical(weights), then
    x ~ N(means[z], stds[z]^2). Returns (x, z)."""
    z = rng.choice(len(weights), size=n, p=np.asarray(weights) / np.sum(weights))
    return rng.normal(np.asarray(means)[z], np.asarray(stds)[z]), z


def gmm_logpdf(x, weights, means, stds) -> np.ndarray:
    """log p(x) = log sum_k w_k N(x; m_k, s_k^2): the latent z summed out."""
    comp = stats.norm.logpdf(np.asarray(x)[:, None], np.asarray(means), np.asarray(stds))
    return np.logaddexp.reduce(comp + np.log(weights), axis=1)


def fit_gmm_1d(x, k: int = 2, iters: int = 200, tol: float = 1e-8, seed: int = 0) -> dict:
    """Maximum-likelihood k-component Gaussian mixture by expectation-maximisation.

    Initialised at quantiles of the data so the fit is deterministic. Returns weights,
    means, stds, the final mean log-likelihood and the number of iterations used.
    """
    x = np.asarray(x, dtype=np.float64)
    if k < 1 or len(x) < 2 * k:
        raise ValueError(f"need k >= 1 and at least 2k points, got k={k}, {len(x)} points")
    means = np.quantile(x, (np.arange(k) + 0.5) / k)
    stds = np.full(k, x.std() / k + 1e-3)
    weights = np.full(k, 1.0 / k)
    prev = -np.inf
    for it in range(1, iters + 1):
        comp = stats.norm.logpdf(x[:, None], means, stds) + np.log(weights)      # E step
        ll = np.logaddexp.reduce(comp, axis=1)
        resp = np.exp(comp - ll[:, None])
        nk = resp.sum(0)                                                           # M step
        weights, means = nk / len(x), (resp * x[:, None]).sum(0) / nk
        stds = np.sqrt((resp * (x[:, None] - means) ** 2).sum(0) / nk) + 1e-6
        if ll.mean() - prev < tol:
            break
        prev = ll.mean()
    order = np.argsort(means)
    return dict(weights=weights[order], means=means[order], stds=stds[order],
                mean_loglik=float(gmm_logpdf(x, weights, means, stds).mean()), iters=it)


# --------------------------------------------------------------- chapters 2-3: the two processes


def forward_chain(x0: torch.Tensor, betas: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
    """Iterate the Markov chain q(x_s | x_{s-1}) = N(sqrt(1-beta_s) x_{s-1}, beta_s I) from
    x_0 for s = 0..t (0-based, as in the code), one step at a time: what eq. (3),
    :meth:`kr_utils.diffusion.NoiseSchedule.q_sample`, does in one jump."""
    x = x0.to(torch.float64).clone()
    for s in range(t + 1):
        x = (1 - betas[s]).sqrt() * x + betas[s].sqrt() * torch.randn(x.shape, generator=generator,
                                                                       dtype=torch.float64)
    return x


def posterior_monte_carlo(x0: float, xt: float, t: int, betas: torch.Tensor, n: int,
                          generator: torch.Generator) -> tuple[float, float]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) by Bayes' rule, without the formula:
    draw x_{t-1} ~ q(x_{t-1} | x_0) (eq. 3) and weight each draw by q(x_t | x_{t-1}).
    Compare with eq. (6), :meth:`kr_utils.diffusion.NoiseSchedule.posterior`."""
    if not 1 <= t < len(betas):
        raise ValueError(f"t must be in [1, {len(betas) - 1}], got {t}")
    ab_prev = alphas_cumprod(betas)[t - 1].item()
    beta = betas[t].item()
    prev = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    w = torch.softmax(-((xt - (1 - beta) ** 0.5 * prev) ** 2) / (2 * beta), 0)
    mean = (w * prev).sum().item()
    return mean, (w * (prev - mean) ** 2).sum().item()


def elbo_weights(betas: torch.Tensor, sigma2: str = "beta") -> torch.Tensor:
    """The weight of ||eps - eps_theta||^2 in the KL term L_t of the ELBO (eq. 19 of `001`):

        lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)),

    with sigma_t^2 = beta_t (``"beta"``, Ho et al.'s and the thesis' choice) or the posterior
    variance (``"posterior"``; its first term is infinite, so t = 0 takes the t = 1 value).
    L_simple sets every lambda_t to 1.
    """
    alphas = 1 - betas
    ab = alphas_cumprod(betas)
    if sigma2 == "beta":
        s2 = betas
    elif sigma2 == "posterior":
        ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
        s2 = betas * (1 - ab_prev) / (1 - ab)
        s2[0] = s2[1]
    else:
        raise ValueError(f"sigma2 must be 'beta' or 'posterior', got {sigma2!r}")
    return betas ** 2 / (2 * s2 * alphas * (1 - ab))


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: alpha_bar_t / (1 - alpha_bar_t)."""
    return alpha_bar / (1 - alpha_bar)


# --------------------------------------------------------------- chapter 8: Curie-Weiss


def curie_weiss_magnetisation(beta: float) -> float:
    """The positive root m* of m = tanh(beta m) (0 when beta <= 1: the paramagnetic phase)."""
    if beta <= 1:
        return 0.0
    return optimize.brentq(lambda m: m - math.tanh(beta * m), 1e-9, 1.0)


def curie_weiss_potential(mu: np.ndarray, alpha_bar: float, m_star: float, n_spins: int, h: float = 0.0):
    """Eq. (28) of `001`: V(mu) = mu^2 / 2 - 2 log cosh[m* (h + sqrt(N) mu sqrt(alpha_bar))]
    (log cosh written stably as |a| + log1p(exp(-2|a|)) - log 2)."""
    a = m_star * (h + math.sqrt(n_spins) * np.asarray(mu) * math.sqrt(alpha_bar))
    logcosh = np.abs(a) + np.log1p(np.exp(-2 * np.abs(a))) - math.log(2)
    return 0.5 * np.asarray(mu) ** 2 - 2 * logcosh


def count_minima(values: np.ndarray) -> int:
    """Number of strict interior local minima of a sampled curve."""
    v = np.asarray(values)
    return int(np.sum((v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])))


def symmetry_breaking_alpha_bar(m_star: float, n_spins: int) -> float:
    """At h = 0, V''(0) = 1 - 2 m*^2 N alpha_bar: the double well of eq. (28) appears when
    alpha_bar exceeds 1 / (2 m*^2 N), i.e. at the 'speciation' time of the reverse process."""
    return 1.0 / (2 * m_star ** 2 * n_spins)
