"""The numerical checks of the theory chapters, on kr_utils itself: the closed form against
the iterated chain (T2), the posterior against Monte Carlo (T3), the ELBO weights, the
1D mixture fit (T1) and the Curie-Weiss potential (T8)."""
import math

import numpy as np
import pytest
import torch

from kr_utils import diffusion

from kr_utils.theory import analytic
from scipy import stats


def test_closed_form_equals_iterated_chain():
    """Iterating q(x_t|x_{t-1}) (analytic.forward_chain) from a fixed x_0 gives the mean and
    variance of the closed form q(x_t|x_0) (eq. T2.2), and q_sample draws from it."""
    g = torch.Generator().manual_seed(0)
    betas = diffusion.linear_beta_schedule(1000)
    ab = diffusion.alphas_cumprod(betas)
    x0 = torch.tensor([0.8, -0.3, 0.0], dtype=torch.float64)
    t, n = 299, 200_000
    chain = analytic.forward_chain(x0.repeat(n, 1), betas, t, g)
    torch.testing.assert_close(chain.mean(0), ab[t].sqrt() * x0, atol=5e-3, rtol=0)
    torch.testing.assert_close(chain.var(0), (1 - ab[t]).expand(3), atol=5e-3, rtol=0)
    jump = diffusion.NoiseSchedule.linear(1000).q_sample(x0.repeat(n, 1), torch.full((n,), t),
                                                          torch.randn((n, 3), generator=g, dtype=torch.float64)).double()
    torch.testing.assert_close(jump.mean(0), chain.mean(0), atol=1e-2, rtol=0)
    torch.testing.assert_close(jump.var(0), chain.var(0), atol=1e-2, rtol=0)


def test_forward_chain_detects_a_wrong_closed_form():
    """The check can fail: with betas doubled the chain no longer matches alpha_bar."""
    g = torch.Generator().manual_seed(0)
    betas = diffusion.linear_beta_schedule(1000)
    chain = analytic.forward_chain(torch.ones(50_000, 1, dtype=torch.float64), 2 * betas, 299, g)
    assert abs(chain.mean().item() - diffusion.alphas_cumprod(betas)[299].sqrt().item()) > 0.1


@pytest.mark.parametrize("t,x0,xt", [(10, 0.5, 0.53), (100, -0.4, -0.1), (500, 0.9, 0.2)])
def test_posterior_moments_by_monte_carlo(t, x0, xt):
    """Eq. (T3.4) = NoiseSchedule.posterior against Bayes' rule by importance weighting."""
    s = diffusion.NoiseSchedule.linear(1000)
    mean, var = analytic.posterior_monte_carlo(x0, xt, t, s.betas, 2_000_000, torch.Generator().manual_seed(1))
    c0, ct, v = s.posterior(t, t - 1)
    assert abs(mean - (c0 * x0 + ct * xt)) < 3e-3 * max(1.0, v ** 0.5 * 10)
    assert abs(var - v) / v < 0.03


def test_posterior_mean_in_eps_form():
    """Eq. (T3.5): the posterior mean written with x_0 equals the one written with eps."""
    s = diffusion.NoiseSchedule.linear(1000)
    t, x0, eps = 300, torch.tensor(0.7, dtype=torch.float64), torch.tensor(-1.2, dtype=torch.float64)
    ab, beta = s.alphas_cumprod[t], s.betas[t]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    c0, ct, _ = s.posterior(t, t - 1)
    assert math.isclose(c0 * x0 + ct * xt, ((xt - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()).item(),
                        rel_tol=1e-9)


def test_elbo_weights_formula():
    betas = diffusion.linear_beta_schedule(1000)
    lam = analytic.elbo_weights(betas)
    ab = diffusion.alphas_cumprod(betas)
    t = 400
    assert math.isclose(lam[t].item(), (betas[t] / (2 * (1 - betas[t]) * (1 - ab[t]))).item(), rel_tol=1e-12)
    assert lam[0] > 40 * lam[-1]                       # the ELBO weights clean steps most
    post = analytic.elbo_weights(betas, "posterior")
    assert torch.isfinite(post).all() and post[1] > lam[1]
    with pytest.raises(ValueError, match="sigma2"):
        analytic.elbo_weights(betas, "other")


def test_weighted_loss_uses_the_weights():
    """diffusion_loss with all-ones weights is L_simple; zero weights give zero loss."""
    class Eps(torch.nn.Module):
        null_class = 1
        def forward(self, x, t, y):
            return 0.5 * x
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    ab = diffusion.NoiseSchedule.linear(100)
    y = torch.zeros(64, dtype=torch.long)
    plain = diffusion.diffusion_loss(Eps(), x0, y, ab, 0.0, torch.Generator().manual_seed(1))
    ones = diffusion.diffusion_loss(Eps(), x0, y, ab, 0.0, torch.Generator().manual_seed(1), weights=torch.ones(100))
    zeros = diffusion.diffusion_loss(Eps(), x0, y, ab, 0.0, torch.Generator().manual_seed(1), weights=torch.zeros(100))
    assert math.isclose(plain.item(), ones.item(), rel_tol=1e-5) and zeros.item() == 0


def test_gmm_fit_recovers_the_mixture():
    rng = np.random.default_rng(0)
    x, z = analytic.sample_gmm((0.4, 0.6), (-3.0, 4.0), (1.0, 1.5), 20_000, rng)
    assert abs((z == 0).mean() - 0.4) < 0.02
    fit = analytic.fit_gmm_1d(x, 2)
    np.testing.assert_allclose(fit["weights"], [0.4, 0.6], atol=0.02)
    np.testing.assert_allclose(fit["means"], [-3, 4], atol=0.1)
    np.testing.assert_allclose(fit["stds"], [1.0, 1.5], atol=0.1)
    one = analytic.gmm_logpdf(x, [1.0], [x.mean()], [x.std()]).mean()
    assert fit["mean_loglik"] > one + 0.3
    with pytest.raises(ValueError, match="at least 2k points"):
        analytic.fit_gmm_1d(x[:3], 2)


def test_gmm_logpdf_integrates_to_one():
    grid = np.linspace(-15, 15, 30_001)
    p = np.exp(analytic.gmm_logpdf(grid, (0.3, 0.7), (-2.0, 3.0), (0.5, 1.0)))
    assert abs(np.trapezoid(p, grid) - 1) < 1e-6


def test_curie_weiss():
    m = analytic.curie_weiss_magnetisation(1.5)
    assert math.isclose(m, math.tanh(1.5 * m), abs_tol=1e-10) and m > 0.8
    assert analytic.curie_weiss_magnetisation(0.9) == 0.0
    mu = np.linspace(-25, 25, 5001)
    n = 100
    ab_c = analytic.symmetry_breaking_alpha_bar(m, n)
    assert analytic.count_minima(analytic.curie_weiss_potential(mu, 1.01 * ab_c, m, n)) == 2
    assert analytic.count_minima(analytic.curie_weiss_potential(mu, 0.99 * ab_c, m, n)) == 1
    # to leading order in 1/N the threshold is 001's 1 / (2 m*^2 N)
    assert math.isclose(ab_c, 1 / (2 * m * m * n), rel_tol=1e-3)
    # the potential's log cosh is computed stably for large arguments
    assert np.isfinite(analytic.curie_weiss_potential(np.array([1e4]), 0.999, m, n)).all()
    with pytest.raises(ValueError, match="alpha_bar"):
        analytic.curie_weiss_potential(mu, 1.0, m, n)


def _eq27_score(y, alpha_bar, m, h):
    """Eq. (27) of 001 spin by spin, on an explicit N-dimensional state y (written out here
    independently of kr_utils: M(y) the mean spin)."""
    n, d = len(y), 1 - alpha_bar
    return -y / d + m * math.sqrt(alpha_bar) / d * np.tanh(m * (h + n * y.mean() * math.sqrt(alpha_bar) / d))


@pytest.mark.parametrize("alpha_bar,h", [(0.9, 0.0), (0.3, 0.4), (0.01, -0.7)])
def test_the_potential_is_the_reverse_drift_of_eq_27(alpha_bar, h):
    # -dV/dmu (finite differences) = mu + 2 S_mu, S_mu the projection of eq. (27) on 1/sqrt(N)
    m, n = analytic.curie_weiss_magnetisation(1.5), 100
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.standard_normal(n) + 0.3
        mu = y.sum() / math.sqrt(n)
        s_mu = _eq27_score(y, alpha_bar, m, h).sum() / math.sqrt(n)
        eps = 1e-5
        dv = (analytic.curie_weiss_potential(mu + eps, alpha_bar, m, n, h)
              - analytic.curie_weiss_potential(mu - eps, alpha_bar, m, n, h)) / (2 * eps)
        assert math.isclose(-dv, mu + 2 * s_mu, rel_tol=1e-5, abs_tol=1e-5)
        assert math.isclose(analytic.curie_weiss_score_mu(mu, alpha_bar, m, n, h), s_mu, rel_tol=1e-9, abs_tol=1e-9)


def test_001s_eq_28_is_the_long_time_regime_of_the_potential():
    m, n, mu = analytic.curie_weiss_magnetisation(1.5), 100, np.linspace(-5, 5, 101)
    ab = 1e-6  # 1 - alpha_bar = 1 to six digits
    v, v28 = (analytic.curie_weiss_potential(mu, ab, m, n, 0.3, general=g) for g in (True, False))
    np.testing.assert_allclose(v - v[50], v28 - v28[50], atol=1e-4)
    # ... and not elsewhere: at alpha_bar = 0.9 the wells sit where the data are, +-m* sqrt(N ab)
    ab, grid = 0.9, np.linspace(-20, 20, 400_001)
    v = analytic.curie_weiss_potential(grid, ab, m, n)
    well = abs(grid[np.argmin(v)])
    assert math.isclose(well, analytic.curie_weiss_limits(grid, ab, m, n)["short_wells"], rel_tol=1e-3)
    assert abs(well - m * math.sqrt(n * ab)) < 0.06 * m * math.sqrt(n * ab)
    v28 = analytic.curie_weiss_potential(grid, ab, m, n, general=False)
    assert math.isclose(abs(grid[np.argmin(v28)]), 2 * m * math.sqrt(n * ab), rel_tol=1e-3)


def test_the_long_time_limit_has_the_factor_two_of_the_log_cosh():
    # with a field h, the single well at small sqrt(N ab) sits at 2 m* tanh(h m*) sqrt(N ab) / (2 - Delta)
    m, n, h, ab = analytic.curie_weiss_magnetisation(1.5), 100, 0.8, 1e-4
    grid = np.linspace(-1, 1, 200_001)
    centre = grid[np.argmin(analytic.curie_weiss_potential(grid, ab, m, n, h))]
    expected = analytic.curie_weiss_limits(grid, ab, m, n, h)["long_centre"]
    assert math.isclose(expected, 2 * m * math.tanh(h * m) * math.sqrt(n * ab) / (1 + ab), rel_tol=1e-12)
    assert math.isclose(centre, expected, rel_tol=1e-2)


def test_a_reverse_run_on_curie_weiss_data_is_three_quarters_committed_near_the_curvature_threshold():
    m, n = analytic.curie_weiss_magnetisation(1.5), 100
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64).numpy()
    ab = np.cumprod(1 - betas)
    r = analytic.curie_weiss_reverse(4000, betas, m, n, 0.0, np.random.default_rng(1), keep=range(0, 1000, 5))
    np.testing.assert_allclose(np.abs(r["mu0"]), m * math.sqrt(n), rtol=1e-6)  # every run ends in a phase
    assert abs(np.mean(r["mu0"] > 0) - 0.5) < 0.05  # and the two phases are equally likely at h = 0
    c = analytic.commitment(r["traj"], r["mu0"])
    assert c[0] == 1.0 and abs(c[995] - 0.5) < 0.06
    t_half = max(t for t, v in c.items() if v >= 0.75)  # half-way from undecided to decided
    t_c = int(np.argmax(ab < analytic.symmetry_breaking_alpha_bar(m, n)))
    assert abs(t_half - t_c) <= 25, (t_half, t_c)
    assert analytic.bimodality_alpha_bar(m, n) > analytic.symmetry_breaking_alpha_bar(m, n)
    # a dimension so high that the schedule's last step is still two-phased: no reverse run from N(0, 1)
    with pytest.raises(ValueError, match="symmetry-breaking"):
        analytic.curie_weiss_reverse(10, betas, m, 10 ** 6, 0.0, np.random.default_rng(1))


def test_the_bayes_limit_of_two_noised_gaussians_against_monte_carlo():
    from kr_utils.theory import toy

    means, std = ((-2.0, -2.0), (2.0, 2.0)), 0.5
    g = torch.Generator().manual_seed(0)
    x, y = toy.two_gaussians(100_000, g, means, std)
    for ab in (0.9, 0.05, 0.0067):
        xt = math.sqrt(ab) * x + math.sqrt(1 - ab) * torch.randn(x.shape, generator=g)
        bayes_rule = (xt.sum(1) > 0).long()  # the means are symmetric about the anti-diagonal
        mc = (bayes_rule == y).double().mean().item()
        assert abs(toy.bayes_accuracy_two_gaussians(means, std, ab) - mc) < 0.005
    ab_499 = float(toy.toy_schedule(500).alphas_cumprod[499])
    assert 0.58 < toy.bayes_accuracy_two_gaussians(means, std, ab_499) < 0.60  # never erased at T = 500


def test_the_kl_of_unequal_variances_against_monte_carlo_and_its_constant():
    rng = np.random.default_rng(0)
    mu_q, mu_p, var_q, var_p = np.array([0.3, -1.0]), np.array([0.5, -0.2]), 0.4, 0.9
    x = mu_q + math.sqrt(var_q) * rng.standard_normal((400_000, 2))
    log_q = -((x - mu_q) ** 2).sum(1) / (2 * var_q) - math.log(2 * math.pi * var_q)
    log_p = -((x - mu_p) ** 2).sum(1) / (2 * var_p) - math.log(2 * math.pi * var_p)
    assert abs(analytic.gaussian_kl(mu_q, var_q, mu_p, var_p) - (log_q - log_p).mean()) < 5e-3
    # the part that depends on the model's mean is the squared distance over 2 var_p: the rest is C
    c = analytic.gaussian_kl(mu_q, var_q, mu_q, var_p)
    assert c > 0 and math.isclose(analytic.gaussian_kl(mu_q, var_q, mu_p, var_p) - c,
                                  ((mu_q - mu_p) ** 2).sum() / (2 * var_p), rel_tol=1e-12)
    assert analytic.gaussian_kl(mu_q, var_q, mu_q, var_q) == 0.0


def test_the_elbo_weights_are_u_shaped():
    lam = analytic.elbo_weights(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    low = int(lam.argmin())
    assert 200 < low < 500 and lam[0] > lam[low] and lam[-1] > lam[low]


MIX = ((0.5, 0.5), (-2.0, 2.0), (0.5, 0.5))  # weights, means, stds of a two-mode 1-D data set


def test_the_forward_chain_is_an_ornstein_uhlenbeck_process_at_its_times():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    s = analytic.ou_time(betas.numpy())
    ab = torch.cumprod(1 - betas, 0).numpy()
    np.testing.assert_allclose(np.exp(-s), np.sqrt(ab), rtol=1e-12)
    rng = np.random.default_rng(0)
    for t in (50, 300, 999):  # the SDE itself, integrated, against eq. (T2.2)'s marginal
        x = analytic.ou_euler(np.full(200_000, 1.5), s[t], 400, rng)
        assert abs(x.mean() - 1.5 * math.sqrt(ab[t])) < 0.01
        assert abs(x.var() - (1 - ab[t])) < 0.01


@pytest.mark.parametrize("ab", [0.9, 0.3, 0.02])
def test_the_score_is_minus_the_expected_noise_over_its_scale(ab):
    # d/dx log q(x_t) (closed form) = -(x_t - sqrt(ab) E[x_0 | x_t]) / (1 - ab) = -E[eps | x_t] / sqrt(1 - ab),
    # with E[x_0 | x_t] by Monte Carlo
    rng = np.random.default_rng(1)
    for x in (-2.5, -0.3, 0.0, 1.1):
        e_x0 = analytic.posterior_mean_x0(x, ab, *MIX, 400_000, rng)
        score = float(analytic.mixture_score(np.array([x]), ab, *MIX)[0])
        implied = (x + (1 - ab) * score) / math.sqrt(ab)  # E[x_0 | x_t] that the score implies
        assert abs(implied - e_x0) < 0.02, (x, implied, e_x0)
    # and the closed form is the derivative of the noised mixture's log density
    grid = np.linspace(-4, 4, 9)
    logq = lambda x: analytic.gmm_logpdf(x, *analytic.noised_mixture(*MIX, ab))  # noqa: E731
    fd = (logq(grid + 1e-5) - logq(grid - 1e-5)) / 2e-5
    np.testing.assert_allclose(analytic.mixture_score(grid, ab, *MIX), fd, rtol=1e-5, atol=1e-6)


def test_the_reverse_sde_with_the_exact_score_returns_the_two_modes():
    rng = np.random.default_rng(2)
    s_end = 5.0
    y = analytic.reverse_ou(lambda y, s: analytic.mixture_score(y, math.exp(-2 * s), *MIX), s_end, 20_000, 2000, rng)
    assert abs(np.mean(y > 0) - 0.5) < 0.02  # both modes, equally
    assert abs(np.abs(y).mean() - 2.0) < 0.05 and abs(y[y > 0].std() - 0.5) < 0.05


def test_a_linear_eps_model_keeps_the_reverse_chain_gaussian():
    # 001's Annex II: the chain is affine plus Gaussian noise at every step, so x_0 is Gaussian
    betas = np.linspace(1e-4, 0.02, 1000)
    m, v = analytic.linear_reverse_moments(betas, mean=0.0, var=4.25)  # the mixture's mean and variance
    x = analytic.linear_reverse_samples(betas, 0.0, 4.25, 100_000, np.random.default_rng(3))
    assert abs(x.mean() - m) < 0.03 and abs(x.var() / v - 1) < 0.02
    assert abs(stats.kurtosis(x)) < 0.05  # Gaussian (the two-mode data have -1.77)
    assert abs(v - 4.25) < 0.1  # it does learn the variance, only not the shape


def test_the_elbo_weights_are_the_kl_of_the_posterior_against_the_model():
    # (T3.6) from its ingredients: the posterior (T3.4, NoiseSchedule.posterior), a model mean of
    # the form (T3.5) with eps + delta, and the KL of two Gaussians (analytic.gaussian_kl)
    s = diffusion.NoiseSchedule.linear(1000)
    lam = analytic.elbo_weights(s.betas)
    rng = np.random.default_rng(0)
    for t in (1, 50, 400, 999):
        ab, beta = s.alphas_cumprod[t].item(), s.betas[t].item()
        x0, eps, delta = rng.standard_normal(3), rng.standard_normal(3), 0.1 * rng.standard_normal(3)
        xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        c0, ct, var_q = s.posterior(t, t - 1)
        mu_q = c0 * x0 + ct * xt
        mu_p = (xt - beta / math.sqrt(1 - ab) * (eps + delta)) / math.sqrt(1 - beta)  # sigma_t^2 = beta_t
        kl = analytic.gaussian_kl(mu_q, var_q, mu_p, beta) - analytic.gaussian_kl(mu_q, var_q, mu_q, beta)
        assert math.isclose(kl, lam[t].item() * (delta ** 2).sum(), rel_tol=1e-6)


def test_the_curie_weiss_magnetisation_by_counting_and_by_enumeration():
    import itertools

    beta, n = 1.5, 10
    m, p = analytic.curie_weiss_pmf(beta, n, h=0.7)
    brute = {}
    for x in itertools.product((-1, 1), repeat=n):  # all 1,024 configurations of eq. (26)
        M = sum(x)
        brute[M] = brute.get(M, 0.0) + math.exp(beta / (2 * n) * M ** 2 + 0.7 / n * M)
    z = sum(brute.values())
    np.testing.assert_allclose(p, [brute[int(round(v * n))] / z for v in m], rtol=1e-10)
    # at large N the two peaks sit at +-m*, the steepest-descent points
    m, p = analytic.curie_weiss_pmf(beta, 4000)
    assert abs(abs(m[np.argmax(p)]) - analytic.curie_weiss_magnetisation(beta)) < 0.005
    np.testing.assert_allclose(p, p[::-1], rtol=1e-9)  # h = 0: the two phases equally likely


def test_the_negative_elbo_is_the_sum_of_its_kl_terms():
    # (T3.2) by Monte Carlo against (T3.3) term by term, on a 1-D chain of T = 6 steps with a
    # linear reverse model mu_theta(x_t, t) = a_t x_t, sigma_t^2 = beta_t, p(x_T) = N(0, 1)
    T, x0, n = 6, 0.8, 400_000
    s = diffusion.NoiseSchedule(T, 0.05, 0.4)
    betas, ab = s.betas.numpy(), s.alphas_cumprod.numpy()
    a = np.linspace(0.7, 1.1, T)
    rng = np.random.default_rng(0)
    xs = [np.full(n, x0)]
    for t in range(T):  # x_1 ... x_T from the forward chain (T2.1)
        xs.append(np.sqrt(1 - betas[t]) * xs[-1] + np.sqrt(betas[t]) * rng.standard_normal(n))

    def lognorm(x, mu, var):
        return -0.5 * (x - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var)

    log_q = sum(lognorm(xs[t + 1], np.sqrt(1 - betas[t]) * xs[t], betas[t]) for t in range(T))
    log_p = lognorm(xs[T], 0.0, 1.0) + sum(lognorm(xs[t], a[t] * xs[t + 1], betas[t]) for t in range(T))
    neg_elbo_mc = np.mean(log_q - log_p)
    # (T3.3): L_T + sum_{t>=2} E KL(q(x_{t-1} | x_t, x_0) || p_theta) + L_0
    l_T = analytic.gaussian_kl(np.sqrt(ab[-1]) * x0, 1 - ab[-1], 0.0, 1.0)
    kl_terms = 0.0
    for t in range(1, T):  # 0-based t: the posterior of x_{t-1} given x_t, x_0 (NoiseSchedule.posterior)
        c0, ct, var_q = s.posterior(t, t - 1)
        mu_q, mu_p = c0 * x0 + ct * xs[t + 1], a[t] * xs[t + 1]
        kl_terms += np.mean((mu_q - mu_p) ** 2 / (2 * betas[t]) + 0.5 * (var_q / betas[t] - 1 - np.log(var_q / betas[t])))
    l_0 = -np.mean(lognorm(x0, a[0] * xs[1], betas[0]))
    assert abs(neg_elbo_mc - (l_T + kl_terms + l_0)) < 0.01


def test_commitment_in_shifted_time_depends_on_n_only_at_order_one_over_n():
    """In the reduced mu dynamics N only shifts time, to leading order in 1/(N m*^2): against s - 1/2 log(N m*^2) the commitment
    curves of N = 10^2 and 10^6 lie on one another, both thresholds at fixed shifted times
    (curvature about 1/2 log 2, bimodality about 0), with commitment about 3/4 and 0.84 there;
    against s itself the two curves are log(10^4)/2 apart."""
    m = analytic.curie_weiss_magnetisation(1.5)
    a = analytic.commitment_in_shifted_time(m, 100, 0.0, 4000, np.random.default_rng(1))
    b = analytic.commitment_in_shifted_time(m, 10 ** 6, 0.0, 4000, np.random.default_rng(2))
    grid = np.linspace(-1.0, 3.0, 41)
    gap = np.abs(np.interp(grid, a["shift"], a["committed"]) - np.interp(grid, b["shift"], b["committed"]))
    assert gap.max() < 0.05  # two independent samples of 4,000 runs
    assert a["s_curvature"] == pytest.approx(0.5 * np.log(2), abs=0.01) and abs(b["s_bimodal"]) < 0.01
    for r in (a, b):
        assert 0.70 < r["at_curvature"] < 0.80 and 0.80 < r["at_bimodal"] < 0.88
    unshifted = np.interp(grid, b["shift"] + 0.5 * np.log(10 ** 4), b["committed"])
    assert np.abs(np.interp(grid, a["shift"], a["committed"]) - unshifted).max() > 0.3


def test_coverage_counts_only_the_images_the_teacher_is_sure_of():
    """A 'teacher' that answers class 3 with confidence 0.2 on every image (noise it barely
    prefers) covers no class at the set's threshold, and one sure of class 3 covers exactly one:
    untrained noise is a failed run, not a collapse, and confident images of one class are."""
    from kr_utils.theory import adversarial

    class Stub(torch.nn.Module):
        def __init__(self, margin):
            super().__init__()
            self.margin = margin

        def forward(self, x):
            logits = torch.zeros(len(x), 10)
            logits[:, 3] = self.margin
            return logits

    class Gen:
        def sample(self, labels, generator):
            return torch.rand(len(labels), 1, 28, 28, generator=generator) * 2 - 1

    unsure = adversarial.coverage_monitor(Stub(0.8), 10, 50, 0, "cpu", threshold=0.9)(0, Gen())
    assert unsure["classes"] == 0 and unsure["confident"] == 0.0 and math.isnan(unsure["entropy"])  # failed, not collapsed
    sure = adversarial.coverage_monitor(Stub(20.0), 10, 50, 0, "cpu", threshold=0.9)(0, Gen())
    assert sure["classes"] == 1 and sure["confident"] == 1.0 and sure["entropy"] == 0.0
    assert adversarial.coverage_monitor(Stub(0.8), 10, 50, 0, "cpu")(0, Gen())["classes"] == 1  # no filter: counted

    class Mostly3(Stub):  # all of class 3 but 5 strays of classes 0, 1, 2, 4, 5, all confident
        def forward(self, x):
            logits = torch.zeros(len(x), 10)
            logits[:, 3] = 20.0
            for i, c in zip(range(45, 50), (0, 1, 2, 4, 5)):
                logits[i, 3], logits[i, c] = 0.0, 20.0
            return logits

    stray = adversarial.coverage_monitor(Mostly3(0), 10, 50, 0, "cpu", threshold=0.9)(0, Gen())
    assert stray["classes"] == 6 and stray["confident"] == 1.0  # 2% of 50 is one image: the strays count here
    assert adversarial.coverage_monitor(Mostly3(0), 10, 500, 0, "cpu", threshold=0.9)(0, Gen())["classes"] == 1


def test_test_reconstruction_decodes_the_code_mean():
    """An autoencoder whose decoder returns the input's own pixel logits (scaled) has a
    cross-entropy close to the pixels' own entropy; the function reads z = mu, never a draw."""
    from kr_utils.theory import adversarial

    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode(self, x):
            return x.flatten(1), torch.full_like(x.flatten(1), 50.0)  # a huge variance: a draw would show

        def decode_logits(self, z):
            return (z * 40).view(len(z), 1, 28, 28)

    x = torch.where(torch.rand(8, 1, 28, 28) > 0.5, 1.0, -1.0)  # binary pixels: a perfect echo costs ~0
    r = adversarial.test_reconstruction(Echo(), x)
    assert r["recon"].shape == (8,) and r["recon"].max() < 1e-6 * 784 * 50
    assert r["kl"].shape == (8,) and r["kl"].min() > 0  # the huge variance's KL, read from the code


def test_hole_difference_is_paired_over_the_digits():
    from kr_utils.theory import restoration
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 1, 28, 28, generator=g) * 2 - 1
    close, far = x0 + 0.1, x0 + 0.5  # every digit: the far fill is worse
    mean, lo, hi = restoration.hole_difference(far, close, x0, 14)
    assert mean == pytest.approx((0.25 ** 2) - (0.05 ** 2)) and lo <= mean <= hi
    assert restoration.hole_difference(close, close, x0, 14) == (0.0, 0.0, 0.0)
    outside = x0.clone(); outside[..., :2, :] = 1.0  # changes outside the hole do not count
    assert restoration.hole_difference(outside, x0, x0, 14)[0] == 0.0


def test_crossover_width_of_a_logistic_commitment():
    """A commitment 0.5 + 0.5 / (1 + exp((s - 1) / 0.5)) goes a quarter to three quarters of the
    way from undecided to committed over 2 * 0.5 * log 3 in s."""
    s = np.linspace(-3, 5, 80001)
    committed = 0.5 + 0.5 / (1 + np.exp((s - 1) / 0.5))
    assert analytic.crossover_width(s, committed) == pytest.approx(np.log(3), abs=1e-3)
    assert analytic.crossover_width(s[::-1], committed[::-1]) == pytest.approx(np.log(3), abs=1e-3)  # any order
