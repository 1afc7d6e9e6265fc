"""Theory chapter T6: per-step and shared single-hidden-layer autoencoders."""
import copy

import pytest
import torch

from kr_utils.theory import autoencoders as ae


def test_short_schedule_ends_in_noise():
    for T in (10, 50, 1000):
        ab = ae.short_schedule(T).alphas_cumprod
        assert ab[-1] < 1e-3 and len(ab) == T


def test_per_step_networks_are_independent():
    """A loss on step k's output changes only step k's weights."""
    m = ae.PerStepAutoencoders(T=5, hidden=8, dim=12)
    x = torch.randn(4, 12)
    m(x, torch.full((4,), 3)).pow(2).sum().backward()
    grads = m.W1.grad.flatten(1).abs().sum(1)
    assert grads[3] > 0 and (grads[[0, 1, 2, 4]] == 0).all()
    with pytest.raises(ValueError, match="one time step"):
        m(x, torch.tensor([0, 1, 1, 1]))


def test_all_steps_matches_forward():
    m = ae.PerStepAutoencoders(T=4, hidden=6, dim=10, output="eps")
    x = torch.randn(4, 3, 10)
    batched = m.all_steps(x)
    for k in range(4):
        torch.testing.assert_close(batched[k], m(x[k], torch.full((3,), k)))


def test_x0_output_converts_to_eps():
    """With output='x0', a network that returns the true x0 yields the true eps."""
    m = ae.SharedAutoencoder(T=20, hidden=4, dim=6)
    x0, eps = torch.rand(5, 6), torch.randn(5, 6)
    t = torch.full((5,), 7)
    ab = m.alphas_cumprod[7]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(m.to_eps(x0, xt, t), eps, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="output"):
        ae.SharedAutoencoder(T=5, hidden=4, output="score")


@pytest.mark.parametrize("make", [lambda: ae.PerStepAutoencoders(T=8, hidden=16, dim=20),
                                  lambda: ae.SharedAutoencoder(T=8, hidden=32, dim=20)])
def test_training_reduces_the_loss(make):
    g = torch.Generator().manual_seed(0)
    prototypes = torch.rand(2, 20, generator=g) * 2 - 1  # two "digits"
    data = prototypes[torch.randint(0, 2, (200,), generator=g)]
    fit = ae.train_autoencoder(make(), data, steps=150, batch_size=32, lr=3e-3, progress=False)
    assert sum(fit["losses"][-10:]) < 0.7 * sum(fit["losses"][:10])


def test_under_adam_the_elbo_weights_change_nothing_for_per_step_networks():
    """001's Fig. 6 compares weighted and unweighted losses. With one network per step, the
    weight of step t scales all the gradients of network t by one constant, which Adam's
    update cancels (up to its epsilon); a shared network mixes the steps and does change."""
    from kr_utils.theory import analytic

    x0 = torch.rand(64, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    w = analytic.elbo_weights(ae.short_schedule(6).betas)
    assert w.max() / w.min() > 5  # far from uniform

    def moved(build):
        """How far the weighted run ends from the unweighted one, relative to how far training
        moved the weights (the same initial weights, batches and noise for both)."""
        ends = []
        for weights in (None, w):
            torch.manual_seed(3)
            model = build()
            start = torch.cat([p.detach().flatten() for p in model.parameters()])
            ae.train_autoencoder(model, x0, steps=30, batch_size=16, lr=1e-2, seed=1, progress=False, weights=weights)
            ends.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return ((ends[0] - ends[1]).norm() / (ends[0] - start).norm()).item()

    # per step: the same model up to Adam's epsilon (about 2% here); shared: another model
    assert moved(lambda: ae.PerStepAutoencoders(T=6, hidden=8, dim=12, output="eps")) < 0.05
    assert moved(lambda: ae.SharedAutoencoder(T=6, hidden=8, dim=12)) > 0.3
    with pytest.raises(ValueError, match="one value per step"):
        ae.train_autoencoder(ae.PerStepAutoencoders(T=6, hidden=8, dim=12), x0, steps=1, batch_size=4, lr=1e-3,
                             weights=w[:3], progress=False)


def test_a_clean_digit_output_becomes_eps_by_eq_t2_2():
    m = ae.PerStepAutoencoders(T=5, hidden=6, dim=10, output="x0")
    x, k = torch.randn(4, 10), 2
    d = torch.relu(x @ m.W1[k] + m.b1[k]) @ m.W2[k] + m.b2[k]  # the network's clean digit D(x_t)
    ab = ae.short_schedule(5).alphas_cumprod[k].float()
    torch.testing.assert_close(m(x, torch.full((4,), k)), (x - ab.sqrt() * d) / (1 - ab).sqrt())


def test_chapter_models_give_the_elbo_run_a_copy_of_the_eps_networks():
    from kr_utils.theory.analytic import elbo_weights

    betas = ae.short_schedule(6).betas
    specs = ae.chapter_models(6, hidden=8, shared_hidden=16, steps=3, shared_steps=5, betas=betas)
    eps, elbo = specs["per-step, outputs eps"], specs["per-step, outputs eps, ELBO weights"]
    assert eps[0] is not elbo[0] and eps[0].output == elbo[0].output == "eps"
    for a, b in zip(eps[0].parameters(), elbo[0].parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # the same start, not shared weights
    torch.testing.assert_close(elbo[2], elbo_weights(betas))
    assert eps[2] is None and specs["per-step, outputs x0"][0].output == "x0"
    assert [s[1] for s in specs.values()] == [3, 3, 3, 5]
    assert isinstance(specs["shared, outputs x0"][0], ae.SharedAutoencoder)


def test_compare_draws_every_model_from_the_same_noise_and_scores_it():
    from kr_utils.diffusion import AncestralSampler
    from kr_utils.theory.toy import energy_distance

    T, dim = 4, 12
    torch.manual_seed(0)
    twin = ae.PerStepAutoencoders(T, 6, dim=dim)
    specs = {"a": (twin, 2, None), "b": (copy.deepcopy(twin), 2, None),
             "shared": (ae.SharedAutoencoder(T, 8, dim=dim), 2, None)}
    x0, ref = torch.rand(32, dim) * 2 - 1, torch.rand(10, dim) * 2 - 1
    sampler = AncestralSampler(ae.short_schedule(T), clip_x0=True)
    rows, samples = ae.compare(specs, x0, ref, sampler, batch_size=8, n_samples=5, seed=3, device="cpu")
    assert list(rows) == list(samples) == ["a", "b", "shared"]
    # the same weights, batches and starting noise give the same samples
    torch.testing.assert_close(samples["a"][0], samples["b"][0])
    for name, (out, traj) in samples.items():
        assert out.shape == (5, dim) and out.abs().max() <= 1 and sorted(traj) == list(range(T))
        assert rows[name]["energy distance to test 0/1"] == pytest.approx(energy_distance(out, ref))
        assert rows[name]["updates"] == 2 and rows[name]["parameters"] > 0
    assert rows["shared"]["hidden units"] == 8
