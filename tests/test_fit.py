"""The one training loop and the one batcher: a run killed mid-way and run again ends with the
same weights as a run that was never interrupted (the U-Net at the smoke profile, mid-epoch;
a classifier, between epochs), and the batcher serves the same batches after a restore."""
import dataclasses

import pytest
import torch

from kr_utils import config, data, diffusion, distill, fit, models


class Killed(Exception):
    """Stands in for a kill: raised from inside the loop after some steps."""


def _digits(n=256):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = -torch.ones(n, 1, 28, 28)
    for i, c in enumerate(y.tolist()):
        x[i, 0, 2 * c + 4, 4:24] = 1
    return x, y


def _unet_run(dcfg, resume_path, kill_at=None):
    x, y = _digits(200)

    def after_step(step, ema):
        if step == kill_at:
            raise Killed

    torch.manual_seed(0)
    unet = models.ConditionalUNet(**dcfg.unet_args())
    return diffusion.train_diffusion(unet, x, y, dcfg, seed=0, device="cpu",
                                     options=diffusion.DiffusionOptions(after_step=after_step, resume_path=resume_path,
                                                                        save_every_s=0.0))


def test_a_killed_diffusion_run_resumes_to_the_same_weights(tmp_path):
    # the smoke profile's U-Net and recipe; 200 digits in batches of 64: epochs of 3 batches, so
    # the kill at step 17 falls inside an epoch (the batcher's position is part of the state)
    dcfg = config.get_config("smoke").diffusion
    whole = _unet_run(dcfg, tmp_path / "a.pt")
    with pytest.raises(Killed):
        _unet_run(dcfg, tmp_path / "b.pt", kill_at=17)
    assert (tmp_path / "b.pt").exists()
    resumed = _unet_run(dcfg, tmp_path / "b.pt")
    assert resumed.losses == whole.losses and len(whole.losses) == dcfg.steps
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_a_killed_classifier_run_resumes_to_the_same_weights(tmp_path, monkeypatch, kill_on_call):
    x, y = _digits(200)
    recipe = config.ClassifierRecipe(arch="simple_cnn", epochs=3, batch_size=32, lr=2e-3, patience=5, augment=True)

    def run(path):
        return distill.train_student((x, y), (x[:50], y[:50]), recipe, seed=0, device="cpu", resume_path=path)

    whole, h_whole = run(tmp_path / "a.pt")
    real = kill_on_call(distill, "evaluate_loss", Killed)  # the end of epoch 2 never comes: killed evaluating it
    with pytest.raises(Killed):
        run(tmp_path / "b.pt")
    monkeypatch.setattr(distill, "evaluate_loss", real)
    resumed, h_resumed = run(tmp_path / "b.pt")
    assert h_resumed["val_loss"] == h_whole["val_loss"] and h_resumed["epoch"] == [1, 2, 3]
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert not (tmp_path / "b.pt").exists()  # a finished run leaves no saved state behind


def test_batcher_epochs_drop_last_and_restore():
    b = data.Batcher(10, 4, torch.Generator().manual_seed(0))
    assert [len(i) for i in b.epoch()] == [4, 4, 2] and b.batches_per_epoch() == 3
    d = data.Batcher(10, 4, torch.Generator().manual_seed(0), drop_last=True)
    first = [next(d) for _ in range(2)]
    assert all(len(i) == 4 for i in first) and d.at_epoch_end() and d.batches_per_epoch() == 2
    assert sorted(torch.cat(first).tolist()) != list(range(10))  # the short batch of 2 was dropped
    state = d.state_dict()
    later = [next(d) for _ in range(5)]
    d2 = data.Batcher(10, 4, torch.Generator().manual_seed(99), drop_last=True)
    d2.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(later, [next(d2) for _ in range(5)]))
    r = data.Batcher(5, 8, torch.Generator().manual_seed(0), replace=True)
    assert len(next(r)) == 8 and not r.at_epoch_end()  # with replacement a batch may exceed n
    assert [i.tolist() for i in data.Batcher(5, 2).epoch()] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="drop_last leaves no batch"):
        data.Batcher(3, 4, drop_last=True)


def test_fit_options_ema_and_early_stop():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fit.FitOptions(steps=0)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    xs = torch.linspace(-1, 1, 16)[:, None]
    loss_fn = lambda idx: ((model(xs[idx]) - 3 * xs[idx]) ** 2).mean()  # noqa: E731
    epochs = []
    run = fit.fit(model, loss_fn, data.Batcher(16, 4, torch.Generator().manual_seed(0)),
                  torch.optim.SGD(model.parameters(), lr=0.1), fit.FitOptions(steps=40, ema_decay=0.5, progress=False),
                  hooks=fit.FitHooks(after_epoch=lambda e, st: epochs.append(e) or e == 3))
    assert epochs == [1, 2, 3] and run.steps == 12 and len(run.losses) == 12  # stopped after epoch 3
    assert run.model is run.ema and not torch.equal(run.ema.weight, model.weight)
    assert dataclasses.is_dataclass(run)


def test_the_ema_follows_the_batchnorm_statistics():
    """A classifier with BatchNorm trained with an EMA of its weights: the EMA network carries
    the running statistics the training gathered, not those of its initialisation (zero mean,
    unit variance), so that it predicts in eval mode as the network it averages does."""
    torch.manual_seed(0)
    model = models.build_classifier("compressed_cnn")
    x, y = _digits(64)
    x = 3 * x + 1  # inputs whose statistics are far from the initial zero mean / unit variance
    loss_fn = lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx])  # noqa: E731
    run = fit.fit(model, loss_fn, data.Batcher(64, 16, torch.Generator().manual_seed(0)),
                  torch.optim.SGD(model.parameters(), lr=1e-3), fit.FitOptions(steps=8, ema_decay=0.99, progress=False))
    live = dict(model.named_buffers())
    assert live, "the classifier has BatchNorm buffers"
    for name, b in run.ema.named_buffers():
        torch.testing.assert_close(b, live[name], rtol=0, atol=0, msg=name)
    assert int(live[next(n for n in live if n.endswith("num_batches_tracked"))]) == 8


def test_built_from_seed_makes_the_initial_weights_a_function_of_the_seed_alone():
    def weights(m):
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    build = lambda: torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))  # noqa: E731
    torch.manual_seed(1)
    untouched = torch.rand(4)
    torch.manual_seed(1)
    a = fit.built_from_seed(build, 5)
    assert torch.equal(torch.rand(4), untouched)  # the global generator goes on as if nothing was built
    torch.manual_seed(2)
    torch.rand(7)  # whatever ran before does not matter
    b = fit.built_from_seed(build, 5)
    assert torch.equal(weights(a), weights(b))
    assert not torch.equal(weights(a), weights(fit.built_from_seed(build, 6)))
