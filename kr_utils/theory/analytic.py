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


def ou_time(betas) -> np.ndarray:
    """The Ornstein-Uhlenbeck time of each step: s_t = -1/2 sum_{i<=t} log(1 - beta_i), so that
    sqrt(alpha_bar_t) = exp(-s_t). The forward chain is then dx = -x ds + sqrt(2) dW sampled at
    the times s_t (`001` eqs. 2 and 24, theta = D = 1; its "log(beta_t - 1)" is log(1 - beta_t))."""
    return -0.5 * np.cumsum(np.log1p(-np.asarray(betas, dtype=float)))


def ou_euler(x0, s_end: float, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Euler-Maruyama for dx = -x ds + sqrt(2) dW from ``x0`` to time ``s_end`` (the SDE itself,
    not its closed-form marginal)."""
    x, ds = np.array(x0, dtype=float), s_end / n_steps
    for _ in range(n_steps):
        x = x - x * ds + math.sqrt(2 * ds) * rng.standard_normal(x.shape)
    return x


def noised_mixture(weights, means, stds, alpha_bar: float):
    """q(x_t) of a 1-D Gaussian mixture q(x_0) under eq. (T2.2): the same weights, means times
    sqrt(ab), variances ab std^2 + 1 - ab."""
    means, stds = np.asarray(means, float), np.asarray(stds, float)
    return np.asarray(weights, float), math.sqrt(alpha_bar) * means, np.sqrt(alpha_bar * stds ** 2 + 1 - alpha_bar)


def mixture_score(x, alpha_bar: float, weights, means, stds) -> np.ndarray:
    """The score d/dx log q(x_t) of a noised 1-D Gaussian mixture, in closed form."""
    w, m, sd = noised_mixture(weights, means, stds, alpha_bar)
    x = np.asarray(x, float)[..., None]
    logp = np.log(w) - 0.5 * ((x - m) / sd) ** 2 - np.log(sd)
    r = np.exp(logp - logp.max(-1, keepdims=True))
    r /= r.sum(-1, keepdims=True)
    return (r * (-(x - m) / sd ** 2)).sum(-1)


def posterior_mean_x0(x_t: float, alpha_bar: float, weights, means, stds, n: int, rng: np.random.Generator) -> float:
    """E[x_0 | x_t] by Monte Carlo, without any formula for the posterior: draws of x_0 from the
    mixture weighted by q(x_t | x_0) (self-normalised)."""
    x0 = sample_gmm(weights, means, stds, n, rng)[0]
    logw = -((x_t - math.sqrt(alpha_bar) * x0) ** 2) / (2 * (1 - alpha_bar))
    w = np.exp(logw - logw.max())
    return float((w * x0).sum() / w.sum())


def reverse_ou(score, s_end: float, n: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """The reverse-time SDE of the Ornstein-Uhlenbeck forward process (Anderson 1982; `001` eq.
    25; eq. T2.5 in the reverse time tau = s_end - s): dy = [y + 2 score(y, s)] dtau + sqrt(2) dW,
    from y ~ N(0, 1) at s = ``s_end`` down to s = 0, by Euler-Maruyama. ``score(y, s)`` is
    d/dy log q_s(y)."""
    y, ds = rng.standard_normal(n), s_end / n_steps
    for k in range(n_steps):
        s = s_end - k * ds
        y = y + (y + 2 * score(y, s)) * ds + math.sqrt(2 * ds) * rng.standard_normal(n)
    return y


def linear_eps_model(alpha_bar, mean: float, var: float):
    """The best linear noise predictor eps(x_t) = a_t (x_t - sqrt(ab) mean) for data of this mean
    and variance (least squares: a_t = sqrt(1 - ab) / (ab var + 1 - ab)): `001`'s Annex II model."""
    ab = np.asarray(alpha_bar, float)
    return np.sqrt(1 - ab) / (ab * var + 1 - ab)


def linear_reverse_moments(betas, mean: float, var: float) -> tuple[float, float]:
    """Mean and variance of x_0 after the ancestral chain (sigma_t^2 = beta_t) with the linear eps
    model of :func:`linear_eps_model`, from x_T ~ N(0, 1): each step is affine in x_t plus Gaussian
    noise, so a Gaussian stays Gaussian and only these two numbers move."""
    betas = np.asarray(betas, float)
    ab = np.cumprod(1 - betas)
    m, v = 0.0, 1.0
    for t in range(len(betas) - 1, -1, -1):
        a = linear_eps_model(ab[t], mean, var)
        c = betas[t] / math.sqrt(1 - ab[t])
        # x' = (x - c a (x - sqrt(ab) mean)) / sqrt(alpha_t) + sqrt(beta_t) z
        g = (1 - c * a) / math.sqrt(1 - betas[t])
        m = g * m + c * a * math.sqrt(ab[t]) * mean / math.sqrt(1 - betas[t])
        v = g * g * v + (betas[t] if t > 0 else 0.0)
    return m, v


def linear_reverse_samples(betas, mean: float, var: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Samples of the same chain as :func:`linear_reverse_moments`, run step by step."""
    betas = np.asarray(betas, float)
    ab = np.cumprod(1 - betas)
    x = rng.standard_normal(n)
    for t in range(len(betas) - 1, -1, -1):
        eps = linear_eps_model(ab[t], mean, var) * (x - math.sqrt(ab[t]) * mean)
        x = (x - betas[t] / math.sqrt(1 - ab[t]) * eps) / math.sqrt(1 - betas[t])
        if t > 0:
            x = x + math.sqrt(betas[t]) * rng.standard_normal(n)
    return x


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


def _logcosh(a):
    a = np.abs(a)
    return a + np.log1p(np.exp(-2 * a)) - math.log(2)  # log cosh, stable for large |a|


def curie_weiss_score_mu(mu, alpha_bar: float, m_star: float, n_spins: int, h: float = 0.0):
    """The score of eq. (27) of `001` projected on mu = sum_i x_i / sqrt(N):
    S_mu = -mu / Delta + sqrt(N) m* sqrt(ab) / Delta * tanh[m* (h + sqrt(N) mu sqrt(ab) / Delta)],
    Delta = 1 - alpha_bar. Eq. (27) treats the data as two phases of magnetisation +-m* whose
    posterior weight given x_t depends on x_t through mu alone (within-phase fluctuations of
    the spins neglected), as Biroli & Mezard (2023) do."""
    mu = np.asarray(mu, dtype=float)
    delta, rn, ra = 1.0 - alpha_bar, math.sqrt(n_spins), math.sqrt(alpha_bar)
    return -mu / delta + rn * m_star * ra / delta * np.tanh(m_star * (h + rn * mu * ra / delta))


def curie_weiss_potential(mu: np.ndarray, alpha_bar: float, m_star: float, n_spins: int, h: float = 0.0,
                          general: bool = True):
    """The potential of the reverse dynamics of mu: -dV/dmu = mu + 2 S_mu, the drift of the
    reverse Ornstein-Uhlenbeck process (Anderson 1982) with the score
    :func:`curie_weiss_score_mu`. With Delta = 1 - alpha_bar (eq. T8.1 of the book):

        V_t(mu) = (2 / Delta - 1) mu^2 / 2 - 2 log cosh[m* (h + sqrt(N) mu sqrt(ab) / Delta)].

    ``general=False`` is eq. (28) of `001`, the same with Delta = 1: right only where
    1 - alpha_bar is close to 1 (alpha_bar = O(1/N), the regime of the symmetry breaking)."""
    if general and not 0.0 < alpha_bar < 1.0:
        raise ValueError(f"alpha_bar must be in (0, 1) for the potential with Delta = 1 - alpha_bar, got {alpha_bar}")
    delta = 1.0 - alpha_bar if general else 1.0
    mu = np.asarray(mu, dtype=float)
    a = m_star * (h + math.sqrt(n_spins) * mu * math.sqrt(alpha_bar) / delta)
    return (2.0 / delta - 1.0) * 0.5 * mu ** 2 - 2 * _logcosh(a)


def curie_weiss_limits(mu, alpha_bar: float, m_star: float, n_spins: int, h: float = 0.0) -> dict:
    """The two limits of :func:`curie_weiss_potential` (up to constants), Delta = 1 - alpha_bar:

    - ``short`` (|a| >> 1, log cosh a ~ |a|): (2/Delta - 1) mu^2/2 - 2 m* sqrt(N ab) |mu| / Delta,
      wells at +-2 m* sqrt(N ab) / (2 - Delta): at +-m* sqrt(N ab), where the data are, as
      Delta -> 0, and at +-2 m* sqrt(N ab) only where Delta ~ 1;
    - ``long`` (sqrt(N ab) small: the cosh term to first order in mu):
      (2/Delta - 1)/2 (mu - mu_0)^2, mu_0 = 2 m* tanh(h m*) sqrt(N ab) / (2 - Delta). The factor 2
      comes from the "2 log cosh"; `001` writes m* tanh(h m*) sqrt(N ab), without it."""
    mu = np.asarray(mu, dtype=float)
    delta, rna = 1.0 - alpha_bar, math.sqrt(n_spins * alpha_bar)
    k = 2.0 / delta - 1.0
    mu0 = 2 * m_star * math.tanh(h * m_star) * rna / (2 - delta)
    return {"short": k * 0.5 * mu ** 2 - 2 * m_star * rna * np.abs(mu) / delta,
            "long": 0.5 * k * (mu - mu0) ** 2,
            "short_wells": 2 * m_star * rna / (2 - delta), "long_centre": mu0}


def curie_weiss_pmf(beta: float, n_spins: int, h: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The exact distribution of the magnetisation m = sum_i x_i / N of `001`'s eq. (26),
    q(x) ~ exp(beta/(2N) (sum x)^2 + h/N sum x), by counting: C(N, k) configurations have
    k spins up, M = 2k - N. Returns (m, P(m)). As N grows it concentrates on +-m*, the
    steepest-descent points of the Hubbard-Stratonovich integral (:func:`curie_weiss_magnetisation`)."""
    from scipy.special import gammaln

    k = np.arange(n_spins + 1)
    M = 2 * k - n_spins
    log_w = (gammaln(n_spins + 1) - gammaln(k + 1) - gammaln(n_spins - k + 1)
             + beta / (2 * n_spins) * M ** 2 + h / n_spins * M)
    p = np.exp(log_w - log_w.max())
    return M / n_spins, p / p.sum()


def count_minima(values: np.ndarray) -> int:
    """Number of strict interior local minima of a sampled curve."""
    v = np.asarray(values)
    return int(np.sum((v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])))


def symmetry_breaking_alpha_bar(m_star: float, n_spins: int, general: bool = True) -> float:
    """At h = 0 the double well of :func:`curie_weiss_potential` appears where V''(0) < 0:
    (2 - Delta)/Delta < 2 m*^2 N ab / Delta^2, i.e. 2 m*^2 N ab > 1 - ab^2, so
    ab_c = sqrt((m*^2 N)^2 + 1) - m*^2 N, which is 1 / (2 m*^2 N) to leading order in 1/N
    (``general=False``: the curvature of `001`'s eq. 28, 1 - 2 m*^2 N ab)."""
    c = m_star ** 2 * n_spins
    return 1.0 / (math.sqrt(c * c + 1.0) + c) if general else 1.0 / (2 * c)  # sqrt(c^2+1) - c, without cancellation


def bimodality_alpha_bar(m_star: float, n_spins: int) -> float:
    """The other threshold: the density of mu_t itself (two Gaussians of variance Delta at
    +-m* sqrt(N ab), within-phase fluctuations neglected) has two modes where their half
    distance exceeds their width, m*^2 N ab > 1 - ab: ab > 1 / (1 + m*^2 N), about twice
    :func:`symmetry_breaking_alpha_bar`."""
    return 1.0 / (1.0 + m_star ** 2 * n_spins)


def phase_thresholds(beta: float, n_spins: int, alpha_bar, h: float = 0.0) -> dict:
    """Theory chapter 8's thresholds on a schedule ``alpha_bar`` (one value per step): m*, the
    curvature threshold (:func:`symmetry_breaking_alpha_bar`) and the density's bimodality one
    (:func:`bimodality_alpha_bar`), the first step (0-based) below each, and the first step at
    which the computed potential (T8.1) has fewer than two minima on a grid ``mu`` wide enough
    to hold the data's wells (+-m* sqrt(N alpha_bar) <= m* sqrt(N))."""
    ab = np.asarray(alpha_bar)
    m_star = curie_weiss_magnetisation(beta)
    ab_c, ab_b = symmetry_breaking_alpha_bar(m_star, n_spins), bimodality_alpha_bar(m_star, n_spins)
    width = m_star * np.sqrt(n_spins) + 10
    mu = np.linspace(-width, width, 4001)
    minima = np.array([count_minima(curie_weiss_potential(mu, a, m_star, n_spins, h)) for a in ab])
    return {"m_star": m_star, "ab_c": ab_c, "ab_b": ab_b, "t_c": int(np.argmax(ab < ab_c)), "t_b": int(np.argmax(ab < ab_b)),
            "t_numeric": int(np.argmax(minima < 2)), "mu": mu}


def threshold_texts(th: dict, beta: float, n_spins: int, h: float, alpha_bar) -> dict:
    """Theory chapter 8's numbers of :func:`phase_thresholds` (steps as the equations count
    them, code index + 1), and the largest N whose curvature threshold, about 1 / (2 m*^2 N),
    the schedule's last alpha_bar still reaches."""
    ab_T = float(np.asarray(alpha_bar)[-1])
    return {"t8_m_star": f"{th['m_star']:.3f}", "t8_beta": f"{beta:g}", "t8_n": f"{n_spins:,d}", "t8_h": f"{h:g}",
            "t8_t_c": th["t_c"] + 1, "t8_t_b": th["t_b"] + 1, "t8_t_numeric": th["t_numeric"] + 1,
            "t8_ab_c": f"{th['ab_c']:.4f}", "t8_ab_b": f"{th['ab_b']:.4f}", "t8_ab_T": f"{ab_T:.1e}",
            "t8_n_max": f"{1 / (2 * th['m_star'] ** 2 * ab_T):,.0f}"}


def max_gap(a: dict, b: dict, grid) -> float:
    """The largest distance on ``grid`` between two commitment curves
    (:func:`commitment_in_shifted_time`), each interpolated there."""
    return float(np.abs(np.interp(grid, a["shift"], a["committed"]) - np.interp(grid, b["shift"], b["committed"])).max())


def gap_reading(gap: float, twin_gaps) -> str:
    """Whether the largest gap between two commitment curves of different N (:func:`max_gap`)
    exceeds what sampling alone makes: the largest gaps between independent sets of runs at
    one N (``twin_gaps``), worded from where ``gap`` falls among them."""
    twin_gaps = np.sort(np.asarray(twin_gaps))
    share = float((twin_gaps >= gap).mean())
    span = f"{twin_gaps[0]:.3f} to {twin_gaps[-1]:.3f} over {len(twin_gaps)} pairs of independent sets at one N"
    if gap <= twin_gaps[-1]:
        return (f"no larger than sampling alone makes ({span}; {100 * share:.0f}% of them as large or larger): the curves "
                "lie on one another within the runs' own noise")
    return (f"larger than every gap that sampling alone makes ({span}): the curves differ by more than the runs' own "
            "noise, so N moves more than their place")


def curie_weiss_reverse(n_traj: int, betas, m_star: float, n_spins: int, h: float, rng: np.random.Generator,
                        keep=()) -> dict:
    """The reverse DDPM chain (Ho et al. Alg. 2, sigma_t^2 = beta_t) of mu = sum_i x_i / sqrt(N)
    under the score of eq. (27) (:func:`curie_weiss_score_mu`; eps = -sqrt(1 - ab) S), from
    mu_T ~ N(0, 1) (x_T ~ N(0, I) projected) down to mu_0: ``{"mu0": (n,), "traj": {t: (n,)}}``
    with mu_t at each step in ``keep``. The projection on the unit vector 1/sqrt(N) of an
    N-dimensional chain with this score is exactly this one-dimensional chain. The start
    N(0, 1) holds only where the forward chain has forgotten the two phases by its last step:
    a schedule whose last alpha-bar is not below the symmetry-breaking threshold
    (:func:`symmetry_breaking_alpha_bar`; about 1 / (2 m*^2 N)) is refused."""
    betas = np.asarray(betas, dtype=float)
    ab = np.cumprod(1 - betas)
    if ab[-1] >= symmetry_breaking_alpha_bar(m_star, n_spins):
        raise ValueError(f"N = {n_spins}: this schedule ends at alpha-bar {ab[-1]:.2e}, not below the symmetry-breaking "
                         f"threshold {symmetry_breaking_alpha_bar(m_star, n_spins):.2e}: its last step is still "
                         "two-phased, and a reverse run from N(0, 1) would start from the wrong distribution")
    mu, traj = rng.standard_normal(n_traj), {}
    for t in range(len(betas) - 1, -1, -1):
        if t in keep:
            traj[t] = mu.copy()
        eps = -math.sqrt(1 - ab[t]) * curie_weiss_score_mu(mu, ab[t], m_star, n_spins, h)
        mu = (mu - betas[t] / math.sqrt(1 - ab[t]) * eps) / math.sqrt(1 - betas[t])
        if t > 0:
            mu = mu + math.sqrt(betas[t]) * rng.standard_normal(n_traj)
    return {"mu0": mu, "traj": traj}


def commitment(traj: dict, mu0) -> dict:
    """For each kept step t, the fraction of reverse trajectories whose sign at t is the sign
    they end with (0.5: undecided; 1: every trajectory has chosen its phase)."""
    final = np.sign(mu0)
    return {t: float(np.mean(np.sign(v) == final)) for t, v in traj.items()}


def crossover_width(shift, committed, low: float = 0.625, high: float = 0.875) -> float:
    """How wide the commitment's crossover is in the shifted log-time: the distance in ``shift``
    between the last (largest) time at which the commitment (:func:`commitment`: 0.5 undecided,
    1 committed) reaches ``low`` and the last at which it reaches ``high``, by default a quarter
    and three quarters of the way from 0.5 to 1 (commitment grows as the reverse run lowers s)."""
    shift, committed = np.asarray(shift, float), np.asarray(committed, float)
    at = lambda level: shift[committed >= level].max()  # noqa: E731
    return float(at(low) - at(high))


def commitment_in_shifted_time(m_star: float, n_spins: int, h: float, n_traj: int, rng: np.random.Generator,
                               ds: float = 0.01, tail: float = 5.0) -> dict:
    """The commitment (:func:`commitment`) of :func:`curie_weiss_reverse` runs against the
    forward log-time s = -1/2 log(ab) shifted by 1/2 log(N m*^2), where the data's signal
    N m*^2 ab is of order one. The schedule is uniform in s (constant beta = 1 - exp(-2 ds): ab =
    exp(-2 s)) and reaches tail beyond the shift, so that mu_T ~ N(0, 1) is the stationary start
    for any N; every step is kept. In these variables, to leading order in 1/(N m*^2), N only
    moves the curve along s (Delta = 1 - exp(-2 s')/(N m*^2) keeps a small N-dependence): the
    curvature and bimodality thresholds (:func:`symmetry_breaking_alpha_bar`,
    :func:`bimodality_alpha_bar`) sit at about 1/2 log 2 and 0. Returns ``{"shift": (K,),
    "committed": (K,), "s_curvature", "s_bimodal", "at_curvature", "at_bimodal"}`` (the last two
    the commitment at each threshold, by linear interpolation)."""
    shift = 0.5 * math.log(n_spins * m_star ** 2)
    k = int(math.ceil((shift + tail) / ds))
    betas = np.full(k, 1.0 - math.exp(-2.0 * ds))
    runs = curie_weiss_reverse(n_traj, betas, m_star, n_spins, h, rng, keep=range(k))
    c = commitment(runs["traj"], runs["mu0"])
    steps = np.arange(k)
    s = (steps + 1) * ds - shift  # ab after step t is exp(-2 (t + 1) ds)
    frac = np.array([c[t] for t in steps])
    s_c = -0.5 * math.log(symmetry_breaking_alpha_bar(m_star, n_spins)) - shift
    s_b = -0.5 * math.log(bimodality_alpha_bar(m_star, n_spins)) - shift
    return {"shift": s, "committed": frac, "s_curvature": s_c, "s_bimodal": s_b,
            "at_curvature": float(np.interp(s_c, s, frac)), "at_bimodal": float(np.interp(s_b, s, frac))}


def gaussian_kl(mu_q, var_q: float, mu_p, var_p: float) -> float:
    """KL(N(mu_q, var_q I) || N(mu_p, var_p I)) in d = len(mu) dimensions:
    ||mu_q - mu_p||^2 / (2 var_p) + C, C = d/2 (var_q / var_p - 1 - log(var_q / var_p)); the
    L_{t-1} term of theory chapter T3, where C does not depend on the model (Ho et al. eq. 8)."""
    mu_q, mu_p = np.atleast_1d(np.asarray(mu_q, float)), np.atleast_1d(np.asarray(mu_p, float))
    r = var_q / var_p
    return float(np.sum((mu_q - mu_p) ** 2) / (2 * var_p) + 0.5 * len(mu_q) * (r - 1 - math.log(r)))
