import dataclasses

import torch
import torch.nn.functional as F

from kr_utils import config, data, diffusion, distill, models


def test_distillation_loss_limits():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    torch.testing.assert_close(distill.distillation_loss(s, y), F.cross_entropy(s, y))
    torch.testing.assert_close(distill.distillation_loss(s, y, t, alpha=1.0), F.cross_entropy(s, y))
    # identical logits: the KL term vanishes
    torch.testing.assert_close(distill.distillation_loss(s, y, s.clone(), alpha=0.0), torch.tensor(0.0), atol=1e-6, rtol=0)
    assert distill.distillation_loss(s, y, t, alpha=0.0, temperature=4.0) > 0


def test_augment_keeps_black_background():
    x = -torch.ones(16, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1
    out = distill.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.allclose(out[:, :, 0, :], torch.tensor(-1.0))  # padding is black, not grey
    assert not torch.allclose(out, x)


def test_augment_pads_a_grey_digit_with_grey():
    # the thesis' storage: background 127 of 255, i.e. about -0.004 in model range; the warp must
    # bring in that grey at the frame's edge, not black (-1)
    grey = 127 / 127.5 - 1
    x = torch.full((16, 1, 28, 28), grey)
    x[:, :, 10:18, 12:16] = 1
    x[8:] = torch.where(x[8:] > 0.5, x[8:], torch.tensor(-1.0))  # half of the batch on black
    out = distill.augment(x, torch.Generator().manual_seed(0), max_shift_px=4.0)
    torch.testing.assert_close(out[:8, :, 0, :], torch.full((8, 1, 28), grey), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[8:, :, 0, :], torch.full((8, 1, 28), -1.0), atol=1e-5, rtol=0)
    assert out[:8].amin() >= grey - 1e-5  # nowhere darker than the image's own background


def _toy(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = -torch.ones(n, 1, 28, 28)
    for i, c in enumerate(y.tolist()):
        x[i, 0, 2 * c + 4, 4:24] = 1
    return x + 0.1 * torch.randn(x.shape, generator=g), y


def test_train_classifier_learns_and_stops_early():
    x, y = _toy()
    xv, yv = _toy(128, 1)
    m, h = distill.train_classifier(models.SimpleCNN(), (x, y), (xv, yv),
                                    config.ClassifierRecipe(arch="simple_cnn", epochs=3, batch_size=64, lr=2e-3,
                                                            patience=5), seed=0, device="cpu")
    assert h["epoch"] == [1, 2, 3] and h["val_acc"][-1] > 0.5 and h["val_loss"][-1] < h["val_loss"][0]
    # validation labels that are all wrong: the better it learns, the higher the validation loss,
    # so with patience 1 it stops after epoch 2 and keeps epoch 1's weights
    _, h = distill.train_classifier(models.SimpleCNN(), (x, y), (xv, (yv + 1) % 10),
                                    config.ClassifierRecipe(arch="simple_cnn", epochs=5, batch_size=64, lr=2e-3,
                                                            patience=1), seed=0, device="cpu")
    assert h["epoch"] == [1, 2] and h["best_epoch"] == 1 and h["val_loss"][1] > h["val_loss"][0]


def test_train_diffusion_loss_decreases_and_milestones():
    x, y = _toy(256)
    seen = []
    dcfg = dataclasses.replace(config.get_config("smoke").diffusion, steps=60, batch_size=32, ema_decay=0.99,
                               milestones=(20, 60))
    run = diffusion.train_diffusion(models.ConditionalUNet(**dcfg.unet_args()), x.clamp(-1, 1), y, dcfg, seed=0,
                                    device="cpu", options=diffusion.DiffusionOptions(
                                        after_step=lambda s, m: seen.append(s) if s in (20, 60) else None))
    assert seen == [20, 60] and len(run.losses) == 60 and run.model is run.ema
    assert sum(run.losses[-10:]) < sum(run.losses[:10])


def test_synthetic_split_and_train_student():
    import numpy as np
    imgs = np.zeros((100, 28, 28), np.uint8)
    labels = np.arange(100) % 10
    logits = np.eye(10, dtype=np.float32)[labels] * 5
    (xt, yt, zt), (xv, yv) = distill.synthetic_split(imgs, labels, logits, 0.1, seed=0)
    assert len(xt) == 90 and len(xv) == 10 and zt.shape == (90, 10)
    assert xt.min() == -1 and sorted(yt.tolist() + yv.tolist()) == sorted(labels.tolist())
    scfg = config.get_config("smoke").student.recipe(arch="compressed_cnn", labels="soft_t4")
    m, h = distill.train_student((xt, yt, zt), (xv, yv), scfg, seed=0, device="cpu")
    assert isinstance(m, models.CompressedCNN) and h["epoch"] == [1]


def test_optimizer_updates_counts_the_batches_of_the_split():
    import numpy as np
    for n, batch, epochs in ((100, 64, 1), (1731, 64, 6), (7, 3, 2)):
        labels = np.arange(n) % 10
        (xt, _, _), _ = distill.synthetic_split(np.zeros((n, 28, 28), np.uint8), labels,
                                              np.zeros((n, 10), np.float32), 0.1, seed=0)
        per_epoch = len(data.Batcher(len(xt), batch, torch.Generator().manual_seed(0)).epoch())
        assert distill.optimizer_updates(n, 0.1, batch, epochs) == epochs * per_epoch
