"""The 2D toy models of theory chapters T3-T5: data, training, guidance, measures."""
import math

import pytest
import torch

from kr_utils import diffusion

from kr_utils.theory import toy


def test_datasets():
    g = torch.Generator().manual_seed(0)
    x, y = toy.two_gaussians(1000, g)
    assert x.shape == (2000, 2) and (y == 0).sum() == 1000
    torch.testing.assert_close(x[y == 0].mean(0), torch.tensor([-2.0, -2.0]), atol=0.05, rtol=0)
    assert abs(x[y == 1].std(0).mean().item() - 0.5) < 0.03
    roll = toy.swiss_roll(3000, g, max_angle=3 * math.pi)
    assert roll.shape == (3000, 2) and roll.abs().max() < 2.5


def test_energy_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    shifted = b + torch.tensor([1.0, 0.0])
    assert abs(toy.energy_distance(a, b)) < 0.02
    assert toy.energy_distance(a, shifted) > 0.3
    assert toy.energy_distance(a, b + 2) > toy.energy_distance(a, shifted)
    assert toy.energy_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_cluster_stats():
    g = torch.Generator().manual_seed(0)
    x, y = toy.two_gaussians(500, g)
    s = toy.cluster_stats(x, ((-2, -2), (2, 2)), y)
    assert s["fraction_requested"] == 1.0 and abs(s["spread"] - 0.5) < 0.03
    assert toy.cluster_stats(x, ((-2, -2), (2, 2)), 1 - y)["fraction_requested"] == 0.0


def test_eps_mlp_learns_two_clusters_and_guidance_selects_one():
    """A short training run must put unconditional samples in both modes, conditional ones
    in the requested mode; classifier guidance must move samples towards the class."""
    g = torch.Generator().manual_seed(0)
    x, y = toy.two_gaussians(500, g)
    T = 200
    model = toy.ToyEpsMLP(num_classes=2, hidden=64)
    losses = toy.train_toy_eps(model, x, y, toy.ToyRun(1500, T, progress=False), p_uncond=0.2)
    assert sum(losses[-100:]) / 100 < sum(losses[:100]) / 100
    sampler = diffusion.AncestralSampler(toy.toy_schedule(T), clip_x0=False)
    want = torch.zeros(400, dtype=torch.long)
    uncond = toy.cluster_stats(toy.sample_toy(model, sampler, want, torch.Generator().manual_seed(1), w=0.0),
                               ((-2, -2), (2, 2)), want)
    cond = toy.cluster_stats(toy.sample_toy(model, sampler, want, torch.Generator().manual_seed(1), w=1.0),
                             ((-2, -2), (2, 2)), want)
    assert 0.3 < uncond["fraction_requested"] < 0.7 and cond["fraction_requested"] > 0.95
    clf = toy.NoisyClassifier()
    toy.train_noisy_classifier(clf, x, y, toy.ToyRun(500, T, progress=False))
    assert toy.noisy_accuracy(clf, x, y, 0, T, torch.Generator().manual_seed(2)) > 0.98
    guided = toy.cluster_stats(toy.sample_toy(model, sampler, want, torch.Generator().manual_seed(1),
                                              classifier=clf, scale=3.0), ((-2, -2), (2, 2)), want)
    assert guided["fraction_requested"] > uncond["fraction_requested"] + 0.3


def test_classifier_guidance_pushes_along_the_gradient():
    """eps_hat = eps - s sqrt(1 - ab) grad log p: with a linear classifier the shift is known."""
    class Zero(torch.nn.Module):
        null_class = 1
        def forward(self, x, t, y):
            return torch.zeros_like(x)

    class Linear(torch.nn.Module):  # logits (0, x1): grad log p(1|x) = (0, 1 - p)
        def forward(self, x, t):
            return torch.stack([torch.zeros(len(x)), x[:, 1]], 1)

    schedule = toy.toy_schedule(100)
    ab = schedule.alphas_cumprod
    x = torch.zeros(3, 2)
    t = torch.full((3,), 50)
    eps = toy.classifier_guided_eps(Zero(), Linear(), x, t, torch.ones(3, dtype=torch.long), 2.0, schedule)
    expected = -2.0 * (1 - ab[50]).sqrt().item() * 0.5
    torch.testing.assert_close(eps[:, 1], torch.full((3,), expected), rtol=1e-5, atol=1e-6)
    assert (eps[:, 0] == 0).all()


def test_training_argument_errors():
    with pytest.raises(ValueError, match="steps and batch_size"):
        toy.train_toy_eps(toy.ToyEpsMLP(), torch.zeros(10, 2), None, toy.ToyRun(0, 10))


class _ZeroEps(torch.nn.Module):
    """Predicts zero noise and records the steps it was asked about."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x, t, y):
        self.seen.append(t.clone())
        return torch.zeros_like(x)


def test_noise_error_by_t_averages_within_each_range_of_t():
    model, points = _ZeroEps(), toy.swiss_roll(4000, torch.Generator().manual_seed(0))
    errs = toy.noise_error_by_t(model, diffusion.NoiseSchedule.linear(1000), points, torch.Generator().manual_seed(1))
    assert len(errs) == len(toy.ERROR_BINS) - 1 == len(model.seen)
    for (lo, hi), t in zip(zip(toy.ERROR_BINS[:-1], toy.ERROR_BINS[1:]), model.seen):
        assert lo <= int(t.min()) and int(t.max()) < hi
    # predicting zero leaves the whole noise: E||eps||^2 = 2 in the plane
    assert errs == pytest.approx([2.0] * len(errs), abs=0.15)


def test_compare_weightings_runs_each_weighting_at_each_seed_and_scores_it():
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    data, held_out = toy.swiss_roll(200, g), toy.swiss_roll(30, g)
    sampler = diffusion.AncestralSampler(diffusion.NoiseSchedule.linear(1000), clip_x0=False)
    weightings = {"plain": None, "weighted": torch.linspace(1, 2, 1000)}
    rows, samples, per_t, per_point = toy.compare_weightings(SimpleNamespace(toy_hidden=8, toy_steps=3), data, held_out,
                                                             sampler, weightings, (0, 1), noise_seed=3, device="cpu")
    assert [(r["loss"], r["seed"]) for r in rows] == [("plain", 0), ("weighted", 0), ("plain", 1), ("weighted", 1)]
    assert set(samples) == set(per_t) == set(weightings)
    for name, x in samples.items():  # the last seed's samples, as many as held-out points
        assert x.shape == held_out.shape
        last = next(r for r in reversed(rows) if r["loss"] == name)
        assert last["energy distance"] == pytest.approx(toy.energy_distance(x, held_out, unbiased=True))
        assert last["median distance to roll"] == pytest.approx(toy.distance_to_data(x, held_out).median().item())
        assert len(per_t[name]) == 2 and all(len(e) == len(toy.ERROR_BINS) - 1 for e in per_t[name])
        assert per_t[name][0][2] == pytest.approx(per_point[name][0][2].mean().item()) and len(per_point[name][0][2]) == 30


def test_compare_weightings_starts_every_weighting_of_a_seed_from_the_same_weights():
    """Two identical weightings at one seed are one run twice: the same samples and scores."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    data, held_out = toy.swiss_roll(200, g), toy.swiss_roll(20, g)
    sampler = diffusion.AncestralSampler(diffusion.NoiseSchedule.linear(1000), clip_x0=False)
    torch.rand(3)  # the global generator's state before does not matter
    rows, samples, per_t, per_point = toy.compare_weightings(SimpleNamespace(toy_hidden=8, toy_steps=3), data, held_out,
                                                             sampler, {"one": None, "two": None}, (4,), noise_seed=3,
                                                             device="cpu")
    torch.testing.assert_close(samples["one"], samples["two"])
    assert rows[0]["energy distance"] == rows[1]["energy distance"]
    assert per_t["one"] == per_t["two"]  # the held-out errors are drawn on the same t and noise: paired
    assert toy.paired_difference(per_point["one"], per_point["two"], 0) == (0.0, 0.0, 0.0)


def test_first_strength_is_the_smallest_that_reaches_the_level():
    rows = [{"method": "m", "strength": 2.0, "fraction_requested": 1.0},
            {"method": "m", "strength": 0.5, "fraction_requested": 0.995},
            {"method": "m", "strength": 0.25, "fraction_requested": 0.9},
            {"method": "other", "strength": 0.0, "fraction_requested": 1.0}]
    assert toy.first_strength(rows, "m") == 0.5
    assert toy.first_strength(rows, "m", level=0.999) == 2.0
    assert toy.first_strength(rows, "m", level=1.01) is None
    dip = rows + [{"method": "m", "strength": 1.0, "fraction_requested": 0.9}]  # a larger strength falls back
    assert toy.first_strength(dip, "m") == 2.0


def test_guidance_sweep_draws_every_setting_from_one_noise():
    """s = 0 and w = 0 are both the unconditional model: from one noise, the same samples."""
    from kr_utils import fit

    means = ((-2.0, -2.0), (2.0, 2.0))
    model = fit.built_from_seed(lambda: toy.ToyEpsMLP(num_classes=2, hidden=8), 0)
    clf = fit.built_from_seed(lambda: toy.NoisyClassifier(num_classes=2), 0)
    sampler = diffusion.AncestralSampler(toy.toy_schedule(50), clip_x0=False)
    rows, shown = toy.guidance_sweep(model, clf, sampler, means, 16, 3, scales=(0.0, 1.0), weights=(0.0, 2.0))
    assert list(shown) == ["classifier, s = 0", "classifier, s = 1", "classifier-free, w = 0", "classifier-free, w = 2"]
    assert [(r["method"], r["strength"]) for r in rows] == [("classifier guidance", 0.0), ("classifier guidance", 1.0),
                                                            ("classifier-free", 0.0), ("classifier-free", 2.0)]
    torch.testing.assert_close(shown["classifier, s = 0"], shown["classifier-free, w = 0"])
    assert not torch.allclose(shown["classifier-free, w = 0"], shown["classifier-free, w = 2"])
    stats = toy.cluster_stats(shown["classifier-free, w = 2"], means, torch.zeros(16, dtype=torch.long))
    assert rows[3]["fraction_requested"] == stats["fraction_requested"]


def test_excess_and_paired_difference_carry_the_seeds_spread():
    floor = torch.tensor([1.0, 1.0, 1.0, 1.0])
    one = [[torch.tensor([1.5, 1.5, 1.5, 1.5])], [torch.tensor([1.5, 1.5, 1.5, 1.5])]]  # two seeds alike
    mean, lo, hi = toy.excess(one, floor, 0)
    assert mean == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    apart = [[torch.tensor([1.1, 1.1, 1.1, 1.1])], [torch.tensor([1.9, 1.9, 1.9, 1.9])]]  # the seeds disagree
    mean, lo, hi = toy.excess(apart, floor, 0)
    assert mean == pytest.approx(0.5) and lo < 0 < hi  # points alike, the seeds' spread alone makes it wide
    mean, lo, hi = toy.paired_difference(apart, one, 0)
    assert mean == pytest.approx(0.0, abs=1e-6) and lo < 0 < hi


def test_the_unbiased_energy_distance_is_centred_on_zero():
    g = torch.Generator().manual_seed(0)
    plain, unbiased = [], []
    for _ in range(30):
        a, b = torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g)
        plain.append(toy.energy_distance(a, b)); unbiased.append(toy.energy_distance(a, b, unbiased=True))
    assert min(plain) > 0 and abs(sum(unbiased) / 30) < 0.5 * sum(plain) / 30  # the V-statistic sits above 0
    band = toy.real_band(lambda: toy.swiss_roll(200, g), toy.swiss_roll(200, g), draws=5)
    assert len(band["energy"]) == len(band["median"]) == 5 and all(m > 0 for m in band["median"])


def test_bayes_noise_error_matches_an_empirical_posterior():
    """The quadrature floor against an independent Monte Carlo one: the posterior over 100,000
    drawn roll points (jitter included in the draws), E[eps | x_t] = sum_i w_i (x_t - a x0_i) / sigma
    with w_i proportional to N(x_t; a x0_i, sigma^2 I), on the same t and noise."""
    sch, A = toy.toy_schedule(1000), 3 * math.pi
    pts = toy.swiss_roll(200, torch.Generator().manual_seed(0), max_angle=A)
    bins = (0, 10, 20, 21, 100, 101, 399, 400)  # t <= 10 (code indices 0-9): the range chapter T3 quotes
    floor = toy.bayes_noise_error(sch, pts, torch.Generator().manual_seed(1), max_angle=A, bins=bins)
    ref = toy.swiss_roll(100_000, torch.Generator().manual_seed(2), max_angle=A).double()
    g, x0 = torch.Generator().manual_seed(1), pts.double()
    for (lo, hi), value in zip(zip(bins[:-1], bins[1:]), floor):
        t = torch.randint(lo, hi, (len(pts),), generator=g)
        eps = torch.randn(pts.shape, generator=g).double()
        ab = sch.alphas_cumprod[t].double()[:, None]
        a, sigma = ab.sqrt(), (1 - ab).sqrt()
        x_t = a * x0 + sigma * eps
        diff = x_t[:, None] - a[:, None] * ref[None]
        w = torch.softmax(-diff.pow(2).sum(-1) / (2 * sigma ** 2), 1)
        eps_hat = torch.einsum("bg,bgd->bd", w, diff) / sigma
        mc = (eps_hat - eps).pow(2).sum(1).mean().item()
        assert value == pytest.approx(mc, rel=0.03), (lo, value, mc)
        assert value < eps.pow(2).sum(1).mean().item()  # below the error of predicting no noise


def test_steered_by_is_the_earliest_step_from_which_the_points_stay_on_the_requested_side():
    means = ((-2.0, -2.0), (2.0, 2.0))
    side = lambda share: torch.cat([torch.full((int(100 * share), 2), -0.1), torch.full((100 - int(100 * share), 2), 0.1)])  # noqa: E731
    traj = {0: side(1.0), 25: side(0.95), 50: side(0.5), 75: side(0.92), 100: side(0.4)}
    assert toy.steered_by(traj, means, 0) == 25  # 75 reaches the level, but 50 in between falls back
    assert toy.steered_by(traj, means, 0, level=0.99) == 0
    assert toy.steered_by(traj, means, 1) is None  # the last state is on the other side


def test_the_bayes_floor_per_point_averages_to_the_floor():
    import math

    g = torch.Generator().manual_seed(0)
    pts, sched = toy.swiss_roll(60, g, max_angle=3 * math.pi), diffusion.NoiseSchedule.linear(1000)
    agg = toy.bayes_noise_error(sched, pts, torch.Generator().manual_seed(1), max_angle=3 * math.pi, grid=300)
    per = toy.bayes_noise_error(sched, pts, torch.Generator().manual_seed(1), max_angle=3 * math.pi, grid=300,
                                per_point=True)
    assert [p.shape for p in per] == [(60,)] * len(agg)
    assert [p.mean().item() for p in per] == pytest.approx(agg, rel=1e-5)


def test_weighting_readings_word_the_comparison_from_its_intervals():
    names = {"simple": "s", "elbo": "e"}
    rows = [{"loss": "s", "seed": 0, "energy distance": 0.01, "median distance to roll": 0.1},
            {"loss": "s", "seed": 1, "energy distance": 0.02, "median distance to roll": 0.1},
            {"loss": "e", "seed": 0, "energy distance": 0.0001, "median distance to roll": 0.1},
            {"loss": "e", "seed": 1, "energy distance": -0.0001, "median distance to roll": 0.1}]
    band = {"energy": [-0.001, 0.0, 0.001] * 7, "median": [0.05] * 21}
    floor = [torch.ones(4)] * 5
    worse = [[torch.full((4,), 2.0)] * 5, [torch.full((4,), 2.0)] * 5]  # two seeds, five ranges, four points
    better = [[torch.full((4,), 1.5)] * 5, [torch.full((4,), 1.5)] * 5]
    glues, metrics = toy.weighting_readings(rows, band, {"s": worse, "e": better}, floor, names)
    assert glues["t3_ed_reading"] == "s: 2 of 2 seeds above the band; e: no seed above the band"
    assert glues["t3_err_reading"] == "lower than the L_simple model's at these two seeds"
    assert glues["t3_excess_small"].startswith("1.0000 [") and " against 0.5000 [" in glues["t3_excess_small"]
    assert metrics["paired_small"][0] == pytest.approx(-0.5) and glues["t3_band_n"] == "21"
    glues, _ = toy.weighting_readings(rows, band, {"s": better, "e": worse}, floor, names)
    assert glues["t3_err_reading"] == "higher than the L_simple model's at these two seeds"
