"""The schedule, the forward process and the samplers, checked numerically: against
iteration of the Markov chain, against Monte Carlo, and against diffusers."""
import pytest
import torch

from kr_utils import diffusion

diffusers = pytest.importorskip("diffusers")


def test_schedule_matches_diffusers():
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    betas = diffusion.linear_beta_schedule(1000, 1e-4, 0.02)
    torch.testing.assert_close(betas.float(), ref.betas, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(diffusion.alphas_cumprod(betas).float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-7)


def test_closed_form_equals_iterated_chain():
    """Iterating q(x_t|x_{t-1}) = N(sqrt(1-b_t) x, b_t) from a fixed x_0 gives the mean and
    variance of the closed form q(x_t|x_0) (eq. 3)."""
    g = torch.Generator().manual_seed(0)
    betas = diffusion.linear_beta_schedule(1000)
    ab = diffusion.alphas_cumprod(betas)
    x0 = torch.tensor([0.8, -0.3, 0.0], dtype=torch.float64)
    x = x0.repeat(200_000, 1)
    for t in range(300):
        x = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    t = 299
    torch.testing.assert_close(x.mean(0), ab[t].sqrt() * x0, atol=5e-3, rtol=0)
    torch.testing.assert_close(x.var(0), (1 - ab[t]).expand(3), atol=5e-3, rtol=0)
    # and q_sample draws from that distribution
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    xs = diffusion.q_sample(x0.repeat(200_000, 1), torch.full((200_000,), t), noise, ab).double()
    torch.testing.assert_close(xs.mean(0), x.mean(0), atol=1e-2, rtol=0)
    torch.testing.assert_close(xs.var(0), x.var(0), atol=1e-2, rtol=0)


def test_posterior_moments_by_monte_carlo():
    """Eq. (6): for a fixed x_0 and x_t, the distribution of x_{t-1} given both, sampled by
    rejection-free Bayes (draw x_{t-1} ~ q(.|x_0), weight by q(x_t|x_{t-1})), has the
    posterior mean and variance of AncestralSampler.posterior."""
    s = diffusion.AncestralSampler(clip_x0=False)
    t, x0, xt = 10, 0.5, 0.53  # small t: the posterior variance is well below beta_t
    ab_prev, beta = s.alphas_cumprod[t - 1].item(), s.betas[t].item()
    g = torch.Generator().manual_seed(1)
    prev = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * torch.randn(2_000_000, generator=g, dtype=torch.float64)
    logw = -((xt - (1 - beta) ** 0.5 * prev) ** 2) / (2 * beta)
    w = torch.softmax(logw, 0)
    mean = (w * prev).sum().item()
    var = (w * (prev - mean) ** 2).sum().item()
    c0, ct, v = s.posterior(t)
    assert abs(mean - (c0 * x0 + ct * xt)) < 2e-3
    assert abs(var - v) / v < 0.03


@pytest.mark.parametrize("clip", [False, True])
def test_ancestral_step_matches_ddpm_scheduler(clip):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                  beta_schedule="linear", clip_sample=clip, variance_type="fixed_small")
    ref.set_timesteps(1000)
    ours = diffusion.AncestralSampler(clip_x0=clip)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(4, 1, 28, 28, generator=g) * 1.5, torch.randn(4, 1, 28, 28, generator=g)
    for t in (999, 500, 37, 1, 0):
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("spacing,n,clip", [("leading", 50, False), ("trailing", 20, False), ("trailing", 20, True)])
def test_ddim_matches_ddim_scheduler(spacing, n, clip):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  clip_sample=clip, set_alpha_to_one=True, timestep_spacing=spacing, steps_offset=0)
    ref.set_timesteps(n)
    ours = diffusion.DDIMSampler(clip_x0=clip, spacing=spacing)
    ours.set_timesteps(n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    xa = xb = torch.randn(3, 1, 28, 28, generator=g)
    for t in ours.timesteps.tolist():  # a whole trajectory with a fixed fake eps-model
        eps_a, eps_b = torch.tanh(xa + t / 1000), torch.tanh(xb + t / 1000)
        xa = ours.step(eps_a, t, xa)
        xb = ref.step(eps_b, t, xb, eta=0.0, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(xa, xb, atol=1e-4, rtol=1e-4)


class _Linear(torch.nn.Module):
    """A fake eps-model whose output depends on the class, for guidance tests."""
    null_class = 10

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x, t, y):
        return self.w * x * 0.1 + y.float()[:, None, None, None] / 10


def test_guidance_weights():
    m = _Linear()
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([5, 5]), torch.tensor([3, 7])
    null = torch.full_like(y, 10)
    torch.testing.assert_close(diffusion.guided_eps(m, x, t, y, 1.0), m(x, t, y))
    torch.testing.assert_close(diffusion.guided_eps(m, x, t, y, 0.0), m(x, t, null))
    torch.testing.assert_close(diffusion.guided_eps(m, x, t, y, 3.0), m(x, t, null) + 3 * (m(x, t, y) - m(x, t, null)))


def test_generate_is_reproducible_with_a_generator():
    m = _Linear()
    s = diffusion.build_sampler("ddim", num_steps=5)
    a = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(3))
    b = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(3))
    c = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="num_steps must be in"):
        diffusion.DDIMSampler().set_timesteps(0)
    with pytest.raises(ValueError, match="unknown sampler"):
        diffusion.build_sampler("euler")
