"""The schedule and the samplers, checked against diffusers and against an oracle model.
(The closed form against the iterated chain and the posterior against Monte Carlo are in
tests/test_theory.py.)"""
import dataclasses

import pytest
import torch

from kr_utils import config, diffusion

SCHEDULE = diffusion.NoiseSchedule.linear(1000, 1e-4, 0.02)


def _sampler(name, **changes):
    return diffusion.build_sampler(config.get_config("smoke").sampler, SCHEDULE, sampler=name, **changes)

diffusers = pytest.importorskip("diffusers")


def test_schedule_matches_diffusers():
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    betas = diffusion.linear_beta_schedule(1000, 1e-4, 0.02)
    torch.testing.assert_close(betas.float(), ref.betas, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(diffusion.alphas_cumprod(betas).float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("clip", [False, True])
def test_ancestral_step_matches_ddpm_scheduler(clip):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                  beta_schedule="linear", clip_sample=clip, variance_type="fixed_small")
    ref.set_timesteps(1000)
    ours = diffusion.AncestralSampler(SCHEDULE, clip_x0=clip)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(4, 1, 28, 28, generator=g) * 1.5, torch.randn(4, 1, 28, 28, generator=g)
    for t in (999, 500, 37, 1, 0):
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("n,clip", [(100, True), (20, False)])
def test_respaced_ancestral_matches_ddpm_scheduler(n, clip):
    """Fewer than T steps: the posterior between kept steps, as diffusers computes it."""
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  clip_sample=clip, variance_type="fixed_small", timestep_spacing="trailing")
    ref.set_timesteps(n)
    ours = _sampler("ancestral", clip_x0=clip, num_steps=n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
    for t in ours.timesteps.tolist()[:: max(1, n // 5)] + [ours.timesteps[-1].item()]:
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        b = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="num_steps"):
        ours.set_timesteps(1001)


@pytest.mark.parametrize("spacing,n,clip", [("leading", 50, False), ("trailing", 20, False), ("trailing", 20, True)])
def test_ddim_matches_ddim_scheduler(spacing, n, clip):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  clip_sample=clip, set_alpha_to_one=True, timestep_spacing=spacing, steps_offset=0)
    ref.set_timesteps(n)
    ours = diffusion.DDIMSampler(SCHEDULE, clip_x0=clip, spacing=spacing)
    ours.set_timesteps(n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    xa = xb = torch.randn(3, 1, 28, 28, generator=g)
    for t in ours.timesteps.tolist():  # a whole trajectory with a fixed fake eps-model
        eps_a, eps_b = torch.tanh(xa + t / 1000), torch.tanh(xb + t / 1000)
        xa = ours.step(eps_a, t, xa).prev_sample
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
    s = _sampler("ddim", num_steps=5)
    a = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(3))
    b = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(3))
    c = diffusion.generate(m, s, torch.arange(4), 2.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="num_steps must be in"):
        diffusion.DDIMSampler(SCHEDULE).set_timesteps(0)
    with pytest.raises(config.ConfigError, match="sampler.sampler must be one of"):
        _sampler("euler")
    with pytest.raises(ValueError, match="eta must be >= 0"):
        diffusion.DDIMSampler(SCHEDULE, eta=-1.0)
    with pytest.raises(ValueError, match="a noise schedule needs"):
        diffusion.NoiseSchedule.linear(10, 0.02, 1e-4)


class _Oracle(torch.nn.Module):
    """An eps-model that knows x_0 exactly (a single image): eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    null_class = 10

    def __init__(self, x0, ab):
        super().__init__()
        self.x0, self.ab = x0, ab.float()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, y):
        a = self.ab[t].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0) / (1 - a).sqrt()


def test_reconstruct_and_inpaint_with_an_oracle():
    """With a perfect eps-model the reverse process returns x_0 from any start, and
    inpainting keeps the known pixels exactly."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    s = _sampler("ddim", num_steps=20)
    model = _Oracle(x0, s.schedule.alphas_cumprod)
    rec, noised = diffusion.reconstruct(model, s, x0, 600, torch.zeros(2, dtype=torch.long), 1.0, g)
    assert (noised - x0).abs().mean() > 0.2
    torch.testing.assert_close(rec, x0, atol=1e-3, rtol=0)
    mask = torch.zeros_like(x0)
    mask[..., :14, :] = 1
    out = diffusion.inpaint(model, s, x0, mask, torch.zeros(2, dtype=torch.long), 1.0, g)
    assert torch.equal(out[mask.bool()], x0[mask.bool()])
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


def test_sample_loop_starts_at_start_t():
    s = _sampler("ancestral")
    seen = []
    diffusion.sample_loop(lambda x, t: (seen.append(int(t[0])), torch.zeros_like(x))[1], s, torch.zeros(1, 2),
                          torch.Generator().manual_seed(0), start_t=5)
    assert seen == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_with_eta_matches_ddim_scheduler(clip):
    """eta > 0: the same mean and noise scale as diffusers' DDIMScheduler given the same noise."""
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  clip_sample=clip, set_alpha_to_one=True, timestep_spacing="trailing", steps_offset=0)
    ref.set_timesteps(10)
    ours = diffusion.DDIMSampler(SCHEDULE, clip_x0=clip, eta=0.7)
    ours.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    for t in ours.timesteps.tolist()[:-1]:
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))  # what ours drew
        b = ref.step(eps, t, x, eta=0.7, use_clipped_model_output=True, variance_noise=noise)
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, atol=1e-4, rtol=1e-4)


def test_ddim_honours_eta_noise_scale_and_generator():
    x, eps = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    step = lambda s, seed: s.step(eps, 999, x, generator=torch.Generator().manual_seed(seed)).prev_sample  # noqa: E731
    deterministic = diffusion.DDIMSampler(SCHEDULE)
    deterministic.set_timesteps(10)
    assert torch.equal(step(deterministic, 0), step(deterministic, 1))  # eta = 0 draws nothing
    noisy = diffusion.DDIMSampler(SCHEDULE, eta=1.0)
    noisy.set_timesteps(10)
    assert torch.equal(step(noisy, 0), step(noisy, 0)) and not torch.equal(step(noisy, 0), step(noisy, 1))
    silent = diffusion.DDIMSampler(SCHEDULE, eta=1.0, noise_scale=0.0)
    silent.set_timesteps(10)
    assert torch.equal(step(silent, 0), step(silent, 1))  # noise_scale 0: only the mean remains
    out = noisy.step(eps, 999, x)
    assert isinstance(out, diffusion.SamplerOutput) and out.pred_original_sample.shape == x.shape


def test_build_sampler_follows_the_config():
    smoke = config.get_config("smoke").sampler
    s = diffusion.build_sampler(smoke, SCHEDULE)
    assert isinstance(s, diffusion.DDIMSampler) and len(s.timesteps) == smoke.num_steps and s.eta == smoke.eta
    a = diffusion.build_sampler(smoke, SCHEDULE, sampler="ancestral", noise_scale=0.5)
    assert isinstance(a, diffusion.AncestralSampler) and len(a.timesteps) == 1000 and a.noise_scale == 0.5
    assert a.prev_timestep(0) == -1 and a.prev_timestep(999) == 998


def test_the_inpainting_study_of_t7_with_an_oracle():
    from kr_utils.theory import restoration

    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    mask = restoration.square_hole(x0, 18)
    assert (mask == 0).sum() == 3 * 18 * 18 and mask[0, 0, 5:23, 5:23].eq(0).all() and mask[0, 0, 4, 4] == 1
    with pytest.raises(ValueError, match="hole size"):
        restoration.square_hole(x0, 28)
    s = _sampler("ddim", num_steps=20)
    model = _Oracle(x0, s.schedule.alphas_cumprod)
    table, rows = restoration.inpainting_study(model, s, x0, torch.zeros(3, dtype=torch.long), 14, seed=0,
                                               progress=False)
    assert table["known pixels changed"] == 0.0  # replacement keeps the known pixels exactly
    assert table["inpainted, no class"] < 1e-6 < table["hole left black"]  # the oracle fills the hole back
    assert torch.equal(rows["damaged"][restoration.square_hole(x0, 14) == 0], torch.full((3 * 196,), -1.0))
    # the two fills are drawn from the same noise: a model blind to the class fills both alike
    blind = _Oracle(torch.zeros(1, 1, 28, 28), s.schedule.alphas_cumprod)  # a wrong oracle: the fill is noise-driven
    _, rows = restoration.inpainting_study(blind, _sampler("ancestral"), x0, torch.zeros(3, dtype=torch.long), 14,
                                           seed=0, progress=False)
    assert torch.equal(rows["no class"], rows["with class"])


@pytest.mark.parametrize("n,clip", [(5, False), (8, True), (10, False), (10, True), (20, True)])
def test_dpm_solver_pp_matches_diffusers_step_by_step(n, clip):
    ref = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True,
        thresholding=clip, sample_max_value=1.0, dynamic_thresholding_ratio=0.995, timestep_spacing="trailing")
    ref.set_timesteps(n)
    ours = diffusion.DPMSolverPPSampler(SCHEDULE, clip_x0=clip)
    ours.set_timesteps(n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    xa = xb = torch.randn(3, 1, 28, 28, generator=g)
    for t in ours.timesteps.tolist():  # the same model output for both, at every step
        eps = torch.tanh(xa + t / 1000) * 1.5  # large enough that clipping acts
        xa = ours.step(eps, t, xa).prev_sample
        xb = ref.step(eps, t, xb).prev_sample
        torch.testing.assert_close(xa, xb, atol=2e-4, rtol=2e-4, msg=f"step at t={t}")
        xb = xa.clone()  # each step compared from the same state


def test_dpm_solver_pp_restarts_for_a_new_chain_and_is_deterministic():
    s = diffusion.DPMSolverPPSampler(SCHEDULE)
    assert len(s.timesteps) == 10
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 28, 28, generator=g)

    def run(steps=None):
        y = x
        for t in s.timesteps.tolist()[:steps]:
            y = s.step(torch.tanh(y), t, y).prev_sample
        return y

    whole = run()
    run(steps=4)  # a chain left half-way (its history is the step at the 4th timestep)
    torch.testing.assert_close(run(), whole, rtol=0, atol=0)  # the next chain does not reuse it
    cfg = config.get_config("smoke").sampler
    built = diffusion.build_sampler(cfg, SCHEDULE, sampler="dpmpp2m", num_steps=8)
    assert isinstance(built, diffusion.DPMSolverPPSampler) and len(built.timesteps) == 8


def test_sampler_label_names_the_sampler_and_its_steps():
    import kr_utils
    g = kr_utils.get_config("cpu").sampler
    assert diffusion.sampler_label(dataclasses.replace(g, sampler="ddim", num_steps=20)) == "DDIM in 20 steps"
    assert diffusion.sampler_label(dataclasses.replace(g, sampler="dpmpp2m", num_steps=10)) == \
        "DPM-Solver++ (2M) in 10 steps"
    assert diffusion.sampler_label(dataclasses.replace(g, sampler="ancestral")) == "the ancestral chain"


def test_one_sampler_registry():
    """The names a profile may ask for (``config.SAMPLERS``, checked when a profile is built)
    are exactly the samplers ``build_sampler`` can make (``diffusion.SAMPLERS``), each from
    its own ``from_config``."""
    assert set(config.SAMPLERS) == set(diffusion.SAMPLERS)
    schedule = diffusion.NoiseSchedule.linear(100)
    base = config.get_config("smoke").sampler
    for name, cls in diffusion.SAMPLERS.items():
        s = diffusion.build_sampler(base, schedule, sampler=name, num_steps=4)
        assert type(s) is cls and len(s.timesteps) == 4
    assert len(diffusion.build_sampler(base, schedule, sampler="ancestral").timesteps) == 100  # all T steps
    assert len(diffusion.build_sampler(base, schedule, sampler="ddim").timesteps) == base.num_steps
