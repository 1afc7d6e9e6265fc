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
    losses = toy.train_toy_eps(model, x, y, steps=1500, T=T, p_uncond=0.2, progress=False)
    assert sum(losses[-100:]) / 100 < sum(losses[:100]) / 100
    sampler = diffusion.AncestralSampler(toy.toy_schedule(T), clip_x0=False)
    want = torch.zeros(400, dtype=torch.long)
    uncond = toy.cluster_stats(toy.sample_toy(model, sampler, want, torch.Generator().manual_seed(1), w=0.0),
                               ((-2, -2), (2, 2)), want)
    cond = toy.cluster_stats(toy.sample_toy(model, sampler, want, torch.Generator().manual_seed(1), w=1.0),
                             ((-2, -2), (2, 2)), want)
    assert 0.3 < uncond["fraction_requested"] < 0.7 and cond["fraction_requested"] > 0.95
    clf = toy.NoisyClassifier()
    toy.train_noisy_classifier(clf, x, y, steps=500, T=T, progress=False)
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
        toy.train_toy_eps(toy.ToyEpsMLP(), torch.zeros(10, 2), None, steps=0, T=10)
