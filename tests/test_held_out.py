"""No model trains on a declared validation digit (issue 44, item 1).

The book makes its choices (the guidance weight, the grid's cell, the early student, the
students' epochs) on the real validation digits of ``kr_utils.data.validation_tensors``. That is
fair only if no model has learnt them: not the teacher, not the diffusion model (whose samples
would otherwise carry them into the synthetic set), not a generator of chapter 11 or T9. Each
trainer is stopped at its call here, its training images read, and compared byte for byte with
the validation digits."""
import dataclasses

import numpy as np
import pytest
import torch

from kr_utils import ablation, data, generators, pipeline, replication
from kr_utils.config import get_config
from kr_utils.theory import adversarial


class Caught(Exception):
    """Raised by a trainer stand-in once it has recorded its training images."""


def _bytes(x: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in data.to_uint8(x)}


@pytest.fixture
def smoke(mnist_dir, monkeypatch):
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    cfg = get_config("smoke")
    x_val, _ = pipeline.real_validation(cfg)
    images, _ = data.load(cfg.dataset, "train")
    val = _bytes(x_val)
    # a validation digit whose exact bytes are also a training digit elsewhere cannot be told apart
    _, va_idx = data.train_val_split(len(images), cfg.teacher.val_size, cfg.seed)
    rest = np.setdiff1d(np.arange(len(images)), va_idx)
    twins = val & {row.tobytes() for row in images[rest]}
    return cfg, val - twins


def _catch(monkeypatch, module, name, arg):
    """Replace ``module.name`` by a stand-in that records its positional argument ``arg``."""
    seen = []

    def stand_in(*a, **k):
        seen.append(a[arg])
        raise Caught

    monkeypatch.setattr(module, name, stand_in)
    return seen


def _assert_clean(seen, val, who):
    assert seen, f"{who}: the trainer was not reached"
    leaked = _bytes(seen[0]) & val
    assert not leaked, f"{who} trains on {len(leaked)} declared validation digits"


def test_teacher_split_holds_out_the_validation_digits(smoke):
    cfg, val = smoke
    split = pipeline.teacher_data(cfg, cfg.seed)
    _assert_clean([split["train"][0]], val, "the teacher")
    assert _bytes(split["val"][0]) >= val


def test_diffusion_model_holds_out_the_validation_digits(smoke, monkeypatch):
    cfg, val = smoke
    seen = _catch(monkeypatch, pipeline, "train_diffusion", 1)
    with pytest.raises(Caught):
        pipeline.train_diffusion_model(cfg, "cpu", cfg.seed)
    _assert_clean(seen, val, "the diffusion model")


def test_a_diffusion_model_of_the_whole_training_set_is_not_reused(smoke, monkeypatch):
    """A checkpoint saved before the split (its settings without the held-out digits) is
    trained again, not reused: the cache key records what the model learnt from."""
    from kr_utils.checkpoints import save_checkpoint

    cfg, val = smoke
    old_key = {**cfg.diffusion.as_dict(), "seed": cfg.seed}
    save_checkpoint(pipeline.artifact_dir(cfg.run) / "diffusion.pt", pipeline.new_unet(cfg.diffusion, cfg.seed, cfg),
                    kind="diffusion", config=old_key, profile=cfg.run, seed=cfg.seed, extra={"losses": []})
    seen = _catch(monkeypatch, pipeline, "train_diffusion", 1)
    with pytest.raises(Caught):
        pipeline.train_diffusion_model(cfg, "cpu", cfg.seed)
    _assert_clean(seen, val, "the diffusion model")


def test_theory_fallback_unet_holds_out_the_validation_digits(smoke, monkeypatch):
    cfg, val = smoke
    seen = _catch(monkeypatch, pipeline, "train_diffusion", 1)
    with pytest.raises(Caught):
        pipeline.theory_diffusion_model(cfg, 2, "cpu", cfg.seed)
    _assert_clean(seen, val, "the theory chapters' U-Net")


def test_range_unet_holds_out_the_validation_digits(smoke, monkeypatch):
    cfg, val = smoke
    base = pipeline.artifact_dir(cfg.run) / "diffusion.pt"
    base.write_bytes(b"stand-in")  # only hashed into the cache key before the trainer is called
    monkeypatch.setattr(ablation, "load_model", lambda *a, **k: None)
    seen = _catch(monkeypatch, ablation, "train_diffusion", 1)
    with pytest.raises(Caught):
        ablation.range_unet(cfg, -3.0, "cpu")
    # the digits mapped to [-3, 1]: map them back before comparing
    _assert_clean([(seen[0] + 3) / 2 - 1], val, "chapter 7's U-Net of [-3, 1]")


@pytest.mark.parametrize("build", ["chapter 11", "T9 latent 2-D", "T9 adversarial"])
def test_generators_hold_out_the_validation_digits(smoke, monkeypatch, build):
    cfg, val = smoke
    seen = _catch(monkeypatch, generators, "train_generator", 1)
    with pytest.raises(Caught):
        if build == "chapter 11":
            replication.generator(cfg, "vae", "cpu")
        elif build == "T9 latent 2-D":
            adversarial.latent_2d(cfg, "cpu")
        else:
            adversarial.adversarial_runs(dataclasses.replace(cfg), None, "cpu")
    _assert_clean(seen, val, build)


def test_fit_digits_and_validation_partition_the_training_set(smoke):
    cfg, _ = smoke
    n = len(data.load(cfg.dataset, "train")[1])
    fit = data.fit_indices(n, cfg.teacher.val_size, cfg.seed)
    _, va = data.train_val_split(n, cfg.teacher.val_size, cfg.seed)
    assert len(np.intersect1d(fit, va)) == 0 and len(fit) + len(va) == n


def test_the_size_curves_labeller_never_saw_the_real_arms_digits(smoke):
    """Chapter 9's size curve: its labeller learns from half A, its real arm draws from half B;
    the two halves share no digit and neither holds a validation digit."""
    from kr_utils import claims

    cfg, val = smoke
    (xa, _), (xb, _) = claims.halves(cfg)
    a, b = {r.tobytes() for r in xa}, {r.tobytes() for r in xb}
    assert len(xa) and len(xb) and not (a & b - _twins(xa, xb))
    assert not (a & val) and not (b & val)


def _twins(xa, xb) -> set:
    """Digits whose exact bytes occur more than once in the training set (MNIST repeats a few)."""
    from collections import Counter

    counts = Counter(r.tobytes() for r in np.concatenate([xa, xb]))
    return {k for k, n in counts.items() if n > 1}
