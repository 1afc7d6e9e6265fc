"""Theory chapter T6: per-step and shared single-hidden-layer autoencoders."""
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
