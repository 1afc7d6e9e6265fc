"""The generators of seed 004 (kr_utils.generators): the losses against their closed forms,
the networks' conditioning, and, at smoke, that each conditional generator's images are
classified as the requested class by the teacher well above chance."""
import math

import numpy as np
import pytest
import torch

from kr_utils import generators as G
from kr_utils.config import ConfigError, get_config


class LinearCritic(torch.nn.Module):
    """f(x) = w . x: its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x, y=None):
        return x.flatten(1) @ self.w.flatten()


def test_gradient_penalty_is_zero_for_a_unit_norm_critic():
    w = torch.randn(1, 28, 28)
    critic = LinearCritic(w / w.norm())
    real, fake = torch.rand(16, 1, 28, 28) * 2 - 1, torch.rand(16, 1, 28, 28) * 2 - 1
    assert G.gradient_penalty(critic, real, fake, None).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_measures_the_norm_away_from_one():
    w = torch.randn(1, 28, 28)
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    for scale in (0.5, 3.0):
        critic = LinearCritic(scale * w / w.norm())
        assert G.gradient_penalty(critic, real, fake, None).item() == pytest.approx((scale - 1) ** 2, rel=1e-5)


def test_gradient_penalty_reaches_the_critic_weights():
    """The penalty is a loss of the critic: it must have a gradient with respect to its weights."""
    w = torch.randn(1, 28, 28)
    critic = LinearCritic(2 * w / w.norm())
    G.gradient_penalty(critic, torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28), None).backward()
    assert critic.w.grad is not None and critic.w.grad.norm() > 0


def test_kl_divergence_matches_its_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(32, 5), torch.randn(32, 5)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                 torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(G.kl_divergence(mu, logvar), expected, rtol=1e-5, atol=1e-5)
    assert G.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_vae_loss_is_reconstruction_plus_beta_kl():
    torch.manual_seed(0)
    logits, x01 = torch.randn(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    l0, p0 = G.vae_loss(logits, x01, mu, logvar, beta=0.0)
    l2, p2 = G.vae_loss(logits, x01, mu, logvar, beta=2.0)
    assert l0.item() == pytest.approx(p0["recon"].item(), rel=1e-6)
    assert l2.item() == pytest.approx(p2["recon"].item() + 2 * p2["kl"].item(), rel=1e-5)


def test_gan_losses_real_one_fake_zero_and_both_terms_train_the_discriminator():
    d_real, d_fake = torch.zeros(8, requires_grad=True), torch.zeros(8, requires_grad=True)
    d_loss, g_loss = G.gan_losses(d_real, d_fake)
    assert d_loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)  # D = 1/2 on both
    assert g_loss.item() == pytest.approx(math.log(2), rel=1e-6)
    real_grad, fake_grad = torch.autograd.grad(d_loss, (d_real, d_fake))
    assert (real_grad < 0).all() and (fake_grad > 0).all()  # raise real logits, lower fake ones
    # the minimax loss saturates where the discriminator wins (D(G(z)) -> 0); the non-saturating one does not
    confident = torch.full((8,), -8.0, requires_grad=True)
    sat = torch.autograd.grad(G.gan_losses(confident, confident, saturating=True)[1], confident)[0].abs().sum()
    non = torch.autograd.grad(G.gan_losses(confident, confident)[1], confident)[0].abs().sum()
    assert non > 100 * sat


def test_wgan_losses_are_the_critic_difference_plus_the_penalty():
    w = torch.randn(1, 28, 28)
    critic = LinearCritic(w / w.norm())
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    loss, estimate, gp = G.wgan_losses(critic, real, fake, None, gp_lambda=10.0)
    diff = (critic(real).mean() - critic(fake).mean()).item()
    assert estimate.item() == pytest.approx(diff, rel=1e-5)
    assert loss.item() == pytest.approx(-diff, abs=1e-5) and gp.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("kind", ["vae", "gan", "wgan_gp"])
def test_conditional_networks_use_the_label_and_check_it(kind):
    cfg = get_config("smoke").generators
    model, critic = G.build(kind, cfg, 10)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model.sample(torch.zeros(4, dtype=torch.long), gen())
    b = model.sample(torch.full((4,), 7, dtype=torch.long), gen())
    assert a.shape == (4, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, b)  # same noise, another class: other images
    with pytest.raises(ValueError, match="labels must be in"):
        model.sample(torch.tensor([10]), gen())
    if critic is not None:
        with pytest.raises(ValueError, match="pass labels"):
            critic(a, None)


def test_class_coverage_counts_classes_and_entropy():
    assert G.class_coverage(torch.arange(10).repeat(5), 10) == {"classes": 10, "entropy": pytest.approx(1.0)}
    collapsed = G.class_coverage(torch.full((50,), 3), 10)
    assert collapsed["classes"] == 1 and collapsed["entropy"] == pytest.approx(0.0, abs=1e-7)


def test_bad_generator_settings_are_named():
    with pytest.raises(ConfigError, match="generators.n_critic"):
        get_config("smoke", generators__n_critic=0)
    with pytest.raises(ConfigError, match="generators.per_class"):
        get_config("smoke", generators__per_class=11)
    with pytest.raises(ValueError, match="unknown generator kind"):
        G.build("flow", get_config("smoke").generators, 10)
    with pytest.raises(ValueError, match="steps must be"):
        G.train_generator(G.GeneratorJob("gan", 0, 0, num_classes=10), torch.zeros(4, 1, 28, 28),
                          torch.zeros(4).long(), get_config("smoke").generators, device="cpu")


@pytest.fixture(scope="module")
def judge():
    """A teacher that can tell digits apart (the smoke profile's, 32 updates, cannot): a Simple
    CNN trained for one epoch on 10,000 real training digits, about 95% right."""
    from kr_utils import data, distill, models
    from kr_utils.config import ClassifierRecipe

    x, y = data.split_tensors("train", 12000)
    recipe = ClassifierRecipe(arch="simple_cnn", epochs=1, batch_size=64, lr=2e-3, patience=1)
    model, hist = distill.train_classifier(models.build_classifier("simple_cnn"), (x[:10000], y[:10000]),
                                           (x[10000:], y[10000:]), recipe, seed=0, device="cpu")
    assert hist["val_acc"][-1] > 0.9
    return model.eval()


@pytest.mark.parametrize("kind", ["vae", "gan", "wgan_gp"])
def test_each_conditional_generator_draws_the_requested_class_at_smoke(kind, mnist_dir, judge):
    """Trained at the smoke profile on real MNIST (its 2,000 digits), each generator's images
    are called the class that was asked for far above the 10% of chance."""
    from kr_utils import replication
    from kr_utils.models import predict_logits

    cfg = get_config("smoke")
    teacher = judge
    model, info = replication.generator(cfg, kind, "cpu")
    labels = torch.arange(10).repeat(30)
    pred = predict_logits(teacher, model.sample(labels, torch.Generator().manual_seed(1))).argmax(1)
    agreement = (pred == labels).float().mean().item()
    assert agreement > 0.4, f"{kind}: the teacher agrees with the requested class on {agreement:.0%}"
    assert not info["reused"] and info["train_time_s"] > 0
    again, info2 = replication.generator(cfg, kind, "cpu")  # cached: found, same weights
    assert info2["reused"]
    torch.testing.assert_close(again.sample(labels[:5], torch.Generator().manual_seed(1)),
                               model.sample(labels[:5], torch.Generator().manual_seed(1)))


def test_mosaic_panels_puts_each_class_in_its_row():
    import matplotlib
    matplotlib.use("Agg")
    from kr_utils import plots

    images = np.zeros((20, 28, 28), np.uint8)
    images[10:] = 255  # class 1 white, class 0 black, 10 of each
    fig = plots.mosaic_panels({"a": images, "b": images[::-1].copy()}, row_labels=["0", "1"])
    first, second = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert first.shape == (56, 280) and first[:28].max() == 0 and first[28:].min() == 1
    assert second[:28].min() == 1 and second[28:].max() == 0


def test_replication_table_rows_and_intervals():
    from kr_utils import evaluate, replication

    def row(label, values):
        return {"label": label, "accuracy": evaluate.summarize_seeds(values), "acceptance_rate": 0.5,
                "train_time_s": None, "images_per_s": 1234.0, "frechet": 1.0, "precision": 0.9, "recall": 0.8}

    frame = replication.table({"ddpm": row("DDPM", [0.97, 0.98, 0.99]), "gan": row("GAN", [0.9])})
    assert list(frame.index) == ["DDPM", "GAN"]
    assert frame.loc["DDPM", "student accuracy"].startswith("98.00 ± 1.00%")
    assert frame.loc["GAN", "student accuracy"] == "90.00% (1 seed)" and frame.loc["GAN", "training (s)"] == "—"
    assert frame.loc["GAN", "images/s"] == "1,234"


def test_a_torn_generator_checkpoint_is_named_with_its_chapter(mnist_dir, tmp_path, monkeypatch):
    """A corrupt generator file: an error naming the file and chapter 11, before any training."""
    from kr_utils import replication
    from kr_utils.store import UnreadableFileError

    cfg = get_config("smoke")
    path = replication.folder(cfg) / "gan.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(G, "train_generator", lambda *a, **k: pytest.fail("trained before reading the file"))
    with pytest.raises(UnreadableFileError, match=r"gan\.pt.*chapter 11"):
        replication.generator(cfg, "gan", "cpu")


def test_equal_image_budget_counts_the_real_images_each_generator_reads():
    import dataclasses

    from kr_utils import replication
    cfg = get_config("cpu")
    images = cfg.diffusion.steps * cfg.diffusion.batch_size
    g = cfg.generators
    assert g.equal_images
    for kind in ("vae", "gan"):
        assert replication.steps(cfg, kind) * g.batch_size >= images > (replication.steps(cfg, kind) - 1) * g.batch_size
    assert replication.steps(cfg, "wgan_gp") == -(-images // (g.batch_size * g.n_critic))
    plain = dataclasses.replace(cfg, generators=dataclasses.replace(g, equal_images=False))
    assert replication.steps(plain, "gan") == g.gan_steps and replication.steps(plain, "wgan_gp") == g.wgan_steps
    with pytest.raises(ValueError, match="unknown generator"):
        replication.steps(cfg, "ddpm")


def test_disjoint_cuts_share_no_image_and_keep_every_class_whole():
    from kr_utils import replication
    labels = np.repeat(np.arange(10), 7)
    cuts = [replication.disjoint_cut(labels, 2, seed=0, part=p) for p in range(3)]
    assert all(np.bincount(labels[c], minlength=10).tolist() == [2] * 10 for c in cuts)
    assert len(set(np.concatenate(cuts).tolist())) == 60  # no index in two cuts
    assert np.array_equal(cuts[1], replication.disjoint_cut(labels, 2, seed=0, part=1))
    with pytest.raises(ValueError, match="disjoint cuts"):
        replication.disjoint_cut(labels, 2, seed=0, part=3)  # 4 x 2 > 7 per class


def test_seed_pairs_one_student_per_generator_seed():
    import dataclasses

    from kr_utils import replication
    cfg = get_config("cpu")
    assert replication.seed_pairs(cfg) == [(0, (0,)), (1, (1,)), (2, (2,))]
    one = dataclasses.replace(cfg, generators=dataclasses.replace(cfg.generators, seeds=(0,)))
    assert replication.seed_pairs(one) == [(0, cfg.student.seeds)]


def test_the_monitors_time_is_not_training_time(monkeypatch):
    """T9 reports each generator's training time: the coverage monitor's sampling is kept apart
    (a clock that the monitor moves by 100 s a call)."""
    from kr_utils import generators as G
    from kr_utils.config import get_config

    class Clock:
        t = 0.0

        def perf_counter(self):
            self.t += 0.001
            return self.t

    clock = Clock()
    monkeypatch.setattr(G, "time", clock)

    def slow_monitor(step, model):
        clock.t += 100.0
        return {"classes": 1.0}

    job = G.GeneratorJob("gan", 2, 0, num_classes=10, progress=False, log_every=1, monitor=slow_monitor)
    run = G.train_generator(job, torch.rand(8, 1, 28, 28) * 2 - 1, torch.zeros(8).long(), get_config("smoke").generators,
                            device="cpu")
    assert run.monitor_time_s >= 200 and run.train_time_s < 1
    assert run.history["classes"] == [1.0, 1.0]
