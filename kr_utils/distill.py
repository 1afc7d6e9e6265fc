"""Stage: distillation, training classifiers. A teacher learns real digits from hard labels; a
student learns synthetic digits from the teacher's labels, hard or soft (Hinton et al.'s loss,
seed 003), with random affine jitter. Both go through :func:`train_classifier`: Adam with a
cosine learning-rate decay, early stopping on the validation loss, per-epoch curves, and
resume after an interruption, all on :func:`kr_utils.fit.fit`.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ClassifierRecipe
from .data import Batcher
from .fit import FitOptions, finish, fit, seed_everything
from .models import build_classifier
from .runtime import autocast, channels_last


def augment(x: torch.Tensor, generator: torch.Generator, max_rot_deg=10.0, max_shift_px=2.0,
            scale=(0.9, 1.1)) -> torch.Tensor:
    """Random per-image affine jitter of model-range images.

    Done in [0, 1] so that the padding (zeros) is the black background, not grey.
    """
    b = x.shape[0]
    r = lambda lo, hi: (torch.rand(b, generator=generator) * (hi - lo) + lo).to(x.device)
    ang = r(-max_rot_deg, max_rot_deg) * math.pi / 180
    s = r(*scale)
    tx, ty = r(-max_shift_px, max_shift_px) * 2 / 28, r(-max_shift_px, max_shift_px) * 2 / 28
    theta = torch.stack([torch.stack([torch.cos(ang) / s, -torch.sin(ang) / s, tx], 1),
                         torch.stack([torch.sin(ang) / s, torch.cos(ang) / s, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample((x + 1) / 2, grid, align_corners=False, padding_mode="zeros")
    return out * 2 - 1


def distillation_loss(student_logits, labels, teacher_logits=None, temperature: float = 4.0,
                      alpha: float = 0.5):
    """Hinton et al. (seed 003): alpha CE(s, y) + (1 - alpha) tau^2 KL(p_t^tau || p_s^tau).

    With ``teacher_logits=None`` this is plain cross-entropy on hard labels.
    """
    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return ce
    tau = temperature
    kl = F.kl_div(F.log_softmax(student_logits / tau, 1), F.log_softmax(teacher_logits / tau, 1),
                  log_target=True, reduction="batchmean")
    return alpha * ce + (1 - alpha) * tau ** 2 * kl


@torch.no_grad()
def evaluate_loss(model, x, y, batch_size=1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a classifier on model-range images ``x``."""
    model.eval()
    loss, correct = 0.0, 0
    for idx in Batcher(len(x), batch_size).epoch():
        with autocast(x.device):
            out = model(channels_last(x[idx])).float()
        loss += F.cross_entropy(out, y[idx], reduction="sum").item()
        correct += (out.argmax(1) == y[idx]).sum().item()
    return loss / len(x), correct / len(x)


def train_classifier(model, train, val, recipe: ClassifierRecipe, *, seed: int, device,
                     report: dict | None = None, resume_path: str | Path | None = None, desc: str = "train",
                     select_best: bool = True):
    """Train ``model`` by ``recipe`` (a :class:`kr_utils.config.ClassifierRecipe`); returns
    ``(model, history)``: the weights of the epoch with the lowest validation loss (the final
    ones with ``select_best=False``, which chapter 7's ablation compares), and the per-epoch
    curves.

    ``train``/``val``: tuples ``(x, labels)`` or ``(x, labels, teacher_logits)`` of tensors;
    with ``recipe.soft`` the third entry feeds :func:`distillation_loss`. The learning rate
    decays from ``recipe.lr`` to 0 over the run (cosine, per batch), which removes most of
    the epoch-to-epoch jitter of Adam at lr 0.002 with BatchNorm. Training stops after
    ``recipe.patience`` epochs without a lower validation loss.
    ``report``: extra ``{name: (x, y)}`` sets whose accuracy is only recorded per epoch
    (the student's real-test curve), never used for any decision.
    ``resume_path``: the run's state, saved after each epoch; an interrupted run continues from it.
    """
    gen = seed_everything(seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    train = [t.to(device) for t in train]
    val = [t.to(device) for t in val[:2]]
    report = {k: [t.to(device) for t in v] for k, v in (report or {}).items()}
    batcher = Batcher(len(train[0]), recipe.batch_size, gen)
    total = recipe.epochs * batcher.batches_per_epoch()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / total)))
    hist = {"epoch": [], "train_loss": [], "val_loss": [], "val_acc": [], "epoch_time_s": []}
    hist.update({f"{k}_acc": [] for k in report})
    state = {"hist": hist, "best": {"val_loss": float("inf"), "state": copy.deepcopy(model.state_dict()), "epoch": 0},
             "bad_epochs": 0}
    epoch_losses, t0 = [], [time.perf_counter()]  # this epoch's batch losses x sizes; its start

    def loss_fn(idx):
        xb = augment(train[0][idx], gen) if recipe.augment else train[0][idx]
        out = model(channels_last(xb)).float()
        loss = distillation_loss(out, train[1][idx], train[2][idx] if recipe.soft else None,
                                 recipe.temperature, recipe.alpha)
        epoch_losses.append((loss.detach().float() * len(idx), len(idx)))
        return loss

    def after_epoch(epoch, st):
        h = st["hist"]
        train_loss = (torch.stack([l for l, _ in epoch_losses]).sum().item() / sum(n for _, n in epoch_losses)
                      if epoch_losses else float("nan"))
        epoch_losses.clear()
        vl, va = evaluate_loss(model, *val)
        h["epoch"].append(epoch); h["train_loss"].append(train_loss)
        h["val_loss"].append(vl); h["val_acc"].append(va)
        for k, (xr, yr) in report.items():
            h[f"{k}_acc"].append(evaluate_loss(model, xr, yr)[1])
        h["epoch_time_s"].append(time.perf_counter() - t0[0])
        t0[0] = time.perf_counter()
        if vl < st["best"]["val_loss"]:
            st["best"] = {"val_loss": vl, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
            st["bad_epochs"] = 0
        else:
            st["bad_epochs"] += 1
        print(f"{desc} epoch {epoch}: train loss {train_loss:.4f}, val loss {vl:.4f}, val acc {va:.4f}"
              + "".join(f", {k} acc {h[f'{k}_acc'][-1]:.4f}" for k in report))
        return st["bad_epochs"] >= recipe.patience

    options = FitOptions(steps=total, amp=True, resume_path=resume_path, desc=desc)
    run = fit(model, loss_fn, batcher, opt, options, scheduler=sched, device=device, state=state,
              after_epoch=after_epoch)
    hist = run.state["hist"]
    if select_best:
        model.load_state_dict(run.state["best"]["state"])
    hist["best_epoch"] = run.state["best"]["epoch"] if select_best else hist["epoch"][-1]
    finish(options)
    return model, hist


def synthetic_split(images_uint8, labels, teacher_logits, val_fraction: float, seed: int):
    """Model-range tensors of a synthetic set, split into ``(x, y, logits)`` for training and
    ``(x, y)`` for validation: the student's validation data are synthetic too."""
    from .data import to_model_range, train_val_split

    x = to_model_range(images_uint8)
    y = torch.as_tensor(labels).long()
    z = torch.as_tensor(teacher_logits).float()
    tr, va = train_val_split(len(x), val_size(len(x), val_fraction), seed)
    return (x[tr], y[tr], z[tr]), (x[va], y[va])


def val_size(n_items: int, val_fraction: float) -> int:
    """Digits that :func:`synthetic_split` holds out for validation from a set of ``n_items``."""
    return int(round(n_items * val_fraction))


def optimizer_updates(n_items: int, val_fraction: float, batch_size: int, epochs: int) -> int:
    """Optimiser updates of a full run on a set of ``n_items`` split by :func:`synthetic_split`:
    how much training a student gets, where epochs alone hide the size of its set."""
    n_train = n_items - val_size(n_items, val_fraction)
    return epochs * -(-n_train // batch_size)


def train_student(train, val, recipe: ClassifierRecipe, *, seed: int, device, **kwargs):
    """Train a fresh classifier of ``recipe.arch`` by ``recipe`` with :func:`train_classifier`
    (``kwargs`` pass through: report, resume_path, desc, select_best). The initial weights
    depend on the seed alone, not on what ran before."""
    seed_everything(seed)
    return train_classifier(build_classifier(recipe.arch), train, val, recipe, seed=seed, device=device, **kwargs)
