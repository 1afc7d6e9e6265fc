"""The numerical checks of the theory chapters, on kr_utils itself: the closed form against
the iterated chain (T2), the posterior against Monte Carlo (T3), the ELBO weights, the
1D mixture fit (T1) and the Curie-Weiss potential (T8)."""
import math

import numpy as np
import pytest
import torch

from kr_utils import diffusion

from kr_utils.theory import analytic


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
    assert analytic.count_minima(analytic.curie_weiss_potential(mu, 1.2 * ab_c, m, n)) == 2
    assert analytic.count_minima(analytic.curie_weiss_potential(mu, 0.8 * ab_c, m, n)) == 1
    # the potential's log cosh is computed stably for large arguments
    assert np.isfinite(analytic.curie_weiss_potential(np.array([1e4]), 1.0, m, n)).all()
