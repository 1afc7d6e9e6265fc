"""Several seeds as one model (kr_utils.seedstack): a stacked pass is each model's own pass, a
stacked step gives each seed its own gradient, and a stacked training run gives each seed
what its own run gives, within float tolerance (float32, on the CPU)."""
import pytest
import torch
import torch.nn.functional as F

from kr_utils import config, data, distill, fit, models, runtime, studies
from kr_utils.seedstack import SeedStack, StackedBatcher
from bars import bar_digits


@pytest.fixture(autouse=True)
def float32(monkeypatch):
    # bf16 autocast rounds differently in a batched convolution than in S separate ones: compare in float32
    monkeypatch.setenv(runtime.PRECISION_ENV, "fp32")


def _models(arch, seeds):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(models.build_classifier(arch))
    return out


@pytest.mark.parametrize("arch", ["resnet_preact", "compressed_cnn"])
def test_a_stacked_pass_and_its_gradients_are_each_models_own(arch):
    ms = _models(arch, [0, 1, 2])
    stack = SeedStack(ms).train()
    x = torch.randn(3, 16, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 10, (3, 16), generator=torch.Generator().manual_seed(6))
    out = stack(x)
    per_seed = torch.stack([F.cross_entropy(out[s], y[s]) for s in range(3)])
    per_seed.sum().backward()
    for s, m in enumerate(ms):
        m.train()
        own = m(x[s])
        F.cross_entropy(own, y[s]).backward()
        torch.testing.assert_close(out[s], own, rtol=1e-4, atol=1e-5)
        state = stack.state_of(s)
        for name, buf in m.named_buffers():  # BatchNorm statistics updated per seed
            torch.testing.assert_close(state[name].to(buf.dtype), buf, rtol=1e-5, atol=1e-6)
        for name, p in m.named_parameters():
            g = stack.stacked_params()[name].grad[s]
            torch.testing.assert_close(g, p.grad, rtol=1e-3, atol=1e-6, msg=f"seed {s}, gradient of {name}")


def test_each_seed_is_clipped_by_its_own_norm():
    ms = _models("compressed_cnn", [0, 1])
    stack = SeedStack(ms)
    for s, m in enumerate(ms):
        for (name, p), sp in zip(m.named_parameters(), stack.parameters()):
            g = torch.randn_like(p) * (10.0 if s == 0 else 0.01)  # seed 0 far above the norm, seed 1 below
            p.grad = g.clone()
            if sp.grad is None:
                sp.grad = torch.zeros_like(sp)
            sp.grad[s] = g
    norms = stack.clip_grad_norm_(1.0)
    for s, m in enumerate(ms):
        own = torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        torch.testing.assert_close(norms[s], own)
        for p, sp in zip(m.parameters(), stack.parameters()):
            torch.testing.assert_close(sp.grad[s], p.grad)


def test_a_stack_takes_one_architecture_and_its_own_number_of_seeds():
    with pytest.raises(ValueError, match="one architecture"):
        SeedStack([models.SimpleCNN(), models.CompressedCNN()])
    with pytest.raises(ValueError, match="S=2"):
        SeedStack(_models("compressed_cnn", [0, 1]))(torch.zeros(3, 4, 1, 28, 28))


def test_stacked_batchers_serve_each_seeds_own_batches_and_resume():
    def batchers():
        return [data.Batcher(50, 8, torch.Generator().manual_seed(s)) for s in (3, 4)]
    alone = [[next(b) for _ in range(10)] for b in batchers()]
    stacked = StackedBatcher(batchers())
    served = [next(stacked) for _ in range(4)]
    state = stacked.state_dict()
    again = StackedBatcher(batchers())
    again.load_state_dict(state)
    served += [next(again) for _ in range(6)]
    for step, idx in enumerate(served):
        for s in range(2):
            assert torch.equal(idx[s], alone[s][step])
    with pytest.raises(ValueError, match="share n"):
        StackedBatcher([data.Batcher(50, 8), data.Batcher(40, 8)])


@pytest.mark.parametrize("arch,soft", [("resnet_preact", True), ("compressed_cnn", False)])
def test_a_stacked_training_run_gives_each_seed_its_own_run(arch, soft):
    x, y, z = bar_digits(240)
    recipe = config.ClassifierRecipe(arch=arch, epochs=2, batch_size=40, lr=2e-3, patience=5, augment=True,
                                     soft=soft, temperature=4.0)
    train, val = (x[:200], y[:200], z[:200]), (x[200:], y[200:])
    seeds = [0, 1, 2]
    alone = [distill.train_student(train, val, recipe, seed=s, device="cpu") for s in seeds]
    together = distill.train_students([train] * 3, [val] * 3, recipe, seeds=seeds, device="cpu")
    x_check = bar_digits(200, seed=9)[0]
    for s, ((m1, h1), (m2, h2)) in enumerate(zip(alone, together)):
        assert h1["epoch"] == h2["epoch"] and h1["best_epoch"] == h2["best_epoch"]
        # Adam's first steps are about sign(gradient) * lr, so a parameter whose gradient is
        # near zero may move either way in float rounding: compare what the models compute
        torch.testing.assert_close(torch.tensor(h2["train_loss"]), torch.tensor(h1["train_loss"]), rtol=2e-2, atol=1e-3)
        torch.testing.assert_close(torch.tensor(h2["val_loss"]), torch.tensor(h1["val_loss"]), rtol=2e-2, atol=1e-3)
        p1 = models.predict_logits(m1, x_check).softmax(1)
        p2 = models.predict_logits(m2, x_check).softmax(1)
        assert (p1 - p2).abs().max() < 0.05, f"seed {s}: probabilities differ by {(p1 - p2).abs().max():.3f}"
        assert (p1.argmax(1) == p2.argmax(1)).float().mean() > 0.98
    # and the seeds are not one another: each has its own weights
    assert not torch.allclose(together[0][0].state_dict()["net.0.weight" if arch == "compressed_cnn" else "stem.weight"],
                              together[1][0].state_dict()["net.0.weight" if arch == "compressed_cnn" else "stem.weight"])


def test_run_classifiers_trains_the_uncached_seeds_together_and_caches_each(tmp_path, monkeypatch):
    x, y, z = bar_digits(150)
    recipe = config.ClassifierRecipe(arch="compressed_cnn", epochs=1, batch_size=50, lr=2e-3, patience=5)
    test = (x[:40], y[:40])
    jobs = [studies.RunJob((x[:120], y[:120]), (x[120:], y[120:]), s, tmp_path / f"run{s}.pt", "k", f"seed {s}")
            for s in (0, 1, 2)]
    calls = []
    real = distill.train_students
    monkeypatch.setattr(distill, "train_students", lambda *a, **k: calls.append(k["seeds"]) or real(*a, **k))
    with runtime.use_levers(group_seeds=True):
        studies.run_classifiers(jobs[:1], recipe, device="cpu", test=test)  # seed 0 alone, cached
        runs = studies.run_classifiers(jobs, recipe, device="cpu", test=test)
    assert calls == [[0], [1, 2]]  # the cached seed is reused, the other two train as one
    assert [r["trained_with"] for r in runs] == [1, 2, 2]
    assert all((tmp_path / f"run{s}.pt").exists() for s in (0, 1, 2))
    with runtime.use_levers(group_seeds=False):
        assert [r["accuracy"] for r in studies.run_classifiers(jobs, recipe, device="cpu", test=test)] == \
               [r["accuracy"] for r in runs]  # all three from the cache
    assert calls == [[0], [1, 2]]


def test_levers_are_switched_by_name_and_unknown_ones_refused(monkeypatch):
    assert not runtime.levers("cpu").group_seeds and runtime.levers("cuda").group_seeds
    assert not runtime.levers("cuda").compile  # until a GPU run measures that it pays
    monkeypatch.setenv(runtime.LEVERS_ENV, "group_seeds=1, compile=0")
    assert runtime.levers("cpu").group_seeds and not runtime.levers("cuda").compile
    with runtime.use_levers(group_seeds=False):
        assert not runtime.levers("cpu").group_seeds
    monkeypatch.setenv(runtime.LEVERS_ENV, "grup_seeds=1")
    with pytest.raises(ValueError, match="grup_seeds"):
        runtime.levers("cpu")
    with pytest.raises(ValueError, match="unknown lever"):
        with runtime.use_levers(fast=True):
            pass


def test_the_foreach_ema_is_the_per_parameter_ema():
    a, b = _models("compressed_cnn", [0, 1])
    e1, e2 = _models("compressed_cnn", [2, 2])
    for step in range(3):
        fit.ema_update(e1, a, 0.99, step, foreach=True)
        fit.ema_update(e2, a, 0.99, step, foreach=False)
    for p1, p2 in zip(e1.parameters(), e2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=0, atol=0)


def test_the_stacked_distillation_loss_is_each_seeds_own():
    g = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(3, 8, 10, generator=g), torch.randn(3, 8, 10, generator=g)
    y = torch.randint(0, 10, (3, 8), generator=g)
    for teacher in (None, t_logits):
        stacked = distill.distillation_losses(s_logits, y, teacher, 4.0, 0.3)
        own = [distill.distillation_loss(s_logits[s], y[s], None if teacher is None else teacher[s], 4.0, 0.3)
               for s in range(3)]
        torch.testing.assert_close(stacked, torch.stack(own))


class Killed(Exception):
    pass


@pytest.mark.parametrize("levers", [{}, {"device_batches": True, "fused_optimizer": True}])
def test_a_killed_stacked_run_resumes_to_the_same_weights(tmp_path, monkeypatch, kill_on_call, levers):
    x, y, z = bar_digits(160)
    recipe = config.ClassifierRecipe(arch="compressed_cnn", epochs=3, batch_size=40, lr=2e-3, patience=5, augment=True)
    train, val = (x[:120], y[:120]), (x[120:], y[120:])

    def run(path):
        with runtime.use_levers(**levers):
            return distill.train_students([train] * 2, [val] * 2, recipe, seeds=[0, 1], device="cpu", resume_path=path)

    whole = run(tmp_path / "a.pt")
    real = kill_on_call(distill, "evaluate_losses", Killed)  # killed while evaluating epoch 2
    with pytest.raises(Killed):
        run(tmp_path / "b.pt")
    monkeypatch.setattr(distill, "evaluate_losses", real)
    resumed = run(tmp_path / "b.pt")
    for (m1, h1), (m2, h2) in zip(whole, resumed):
        assert h1["val_loss"] == h2["val_loss"] and h2["epoch"] == [1, 2, 3]
        for name, value in m1.state_dict().items():
            assert torch.equal(value, m2.state_dict()[name]), name


def test_each_stacked_seed_stops_early_on_its_own_validation_loss(monkeypatch):
    x, y, z = bar_digits(160)
    recipe = config.ClassifierRecipe(arch="compressed_cnn", epochs=4, batch_size=40, lr=2e-3, patience=1)
    train, val = (x[:120], y[:120]), (x[120:], y[120:])
    scripted = iter([[1.0, 3.0], [2.0, 2.0], [0.5, 1.0], [0.1, 0.5]])  # seed 0 stops after epoch 2
    monkeypatch.setattr(distill, "evaluate_losses", lambda *a, **k: [(v, 0.5) for v in next(scripted)])
    (m0, h0), (m1, h1) = distill.train_students([train] * 2, [val] * 2, recipe, seeds=[0, 1], device="cpu")
    assert h0["epoch"] == [1, 2] and h0["val_loss"] == [1.0, 2.0] and h0["best_epoch"] == 1
    assert h1["epoch"] == [1, 2, 3, 4] and h1["best_epoch"] == 4
