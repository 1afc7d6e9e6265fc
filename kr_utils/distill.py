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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .config import ClassifierRecipe
from .data import Batcher
from .fit import FitHooks, FitOptions, compiled, finish, fit, optimizer, seed_everything
from .models import build_classifier, classes_of
from .runtime import autocast, channels_last, levers
from .seedstack import SeedStack, StackedBatcher


def affine_params(b: int, generator: torch.Generator, device, max_rot_deg=10.0, max_shift_px=2.0,
                  scale=(0.9, 1.1)) -> torch.Tensor:
    """The (b, 2, 3) affine matrices of :func:`augment`: a rotation, a scale and a shift per
    image, drawn from ``generator`` (on its own device) in a fixed order."""
    gdev = generator.device
    def r(lo, hi):
        return (torch.rand(b, generator=generator, device=gdev) * (hi - lo) + lo).to(device)
    ang = r(-max_rot_deg, max_rot_deg) * math.pi / 180
    s = r(*scale)
    tx, ty = r(-max_shift_px, max_shift_px) * 2 / 28, r(-max_shift_px, max_shift_px) * 2 / 28
    return torch.stack([torch.stack([torch.cos(ang) / s, -torch.sin(ang) / s, tx], 1),
                        torch.stack([torch.sin(ang) / s, torch.cos(ang) / s, ty], 1)], 1)


def apply_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp model-range images ``x`` by ``theta``. What the warp brings in from outside the frame
    is each image's own background, its darkest value: black for this book's digits, grey
    (127 of 255) for digits stored as the thesis' code stored them, never a black frame around
    a grey digit. (Warping ``x - background`` with zero padding, then adding it back.)"""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin(dim=(-3, -2, -1), keepdim=True)
    return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background


def augment(x: torch.Tensor, generator: torch.Generator, **ranges) -> torch.Tensor:
    """Random per-image affine jitter of model-range images (:func:`affine_params`, :func:`apply_affine`)."""
    return apply_affine(x, affine_params(x.shape[0], generator, x.device, **ranges))


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


def distillation_losses(student_logits, labels, teacher_logits=None, temperature: float = 4.0,
                        alpha: float = 0.5) -> torch.Tensor:
    """:func:`distillation_loss` of each seed at once: logits (S, B, C), labels (S, B), teacher
    logits (S, B, C) or None; returns the S losses."""
    S, B, C = student_logits.shape
    ce = F.cross_entropy(student_logits.reshape(S * B, C), labels.reshape(S * B), reduction="none").view(S, B).mean(1)
    if teacher_logits is None:
        return ce
    tau = temperature
    log_t, log_s = F.log_softmax(teacher_logits / tau, -1), F.log_softmax(student_logits / tau, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1).mean(-1)  # batchmean, as F.kl_div(log_target=True)
    return alpha * ce + (1 - alpha) * tau ** 2 * kl


@torch.no_grad()
def evaluate_loss(model, x, y, batch_size=1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a classifier on model-range images ``x``; the sums
    stay on the device until the end (one host synchronisation, not two per batch)."""
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for idx in Batcher(len(x), batch_size).epoch():
        with autocast(x.device):
            out = model(channels_last(x[idx])).float()
        loss += F.cross_entropy(out, y[idx], reduction="sum").double()
        correct += (out.argmax(1) == y[idx]).sum()
    return loss.item() / len(x), correct.item() / len(x)


def _stack_inputs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One tensor per seed as (S, ...): a view without a copy when every seed has the same one."""
    if all(t is tensors[0] for t in tensors):
        return tensors[0].expand(len(tensors), *tensors[0].shape)
    return torch.stack(tensors)


@torch.no_grad()
def evaluate_losses(stack: SeedStack, x: torch.Tensor, y: torch.Tensor, batch_size=1000) -> list[tuple[float, float]]:
    """:func:`evaluate_loss` of each seed of a :class:`kr_utils.seedstack.SeedStack`, on
    ``x`` (S, N, ...) and ``y`` (S, N): seed s is scored on ``x[s]``."""
    stack.eval()
    S, n = y.shape
    loss = torch.zeros(S, dtype=torch.float64, device=x.device)
    correct = torch.zeros(S, dtype=torch.long, device=x.device)
    for idx in Batcher(n, batch_size).epoch():
        idx = idx.to(x.device)
        with autocast(x.device):
            out = stack(x[:, idx]).float()
        yb = y[:, idx]
        loss += F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(S, -1).double().sum(1)
        correct += (out.argmax(-1) == yb).sum(1)
    return [(lo / n, c / n) for lo, c in zip(loss.tolist(), correct.tolist())]


@dataclass(frozen=True)
class ClassifierOptions:
    """How one call of :func:`train_classifier` or :func:`train_classifiers` runs, beside its
    recipe (what it trains by).

    ``report``: extra ``{name: (x, y)}`` sets whose accuracy is only recorded per epoch (the
    student's real-test curve), never used for any decision.
    ``resume_path``: the run's state, saved after each epoch; an interrupted run continues from it.
    ``desc``: the run's label in its log, one string or one per seed.
    ``select_best``: keep the weights of the epoch with the lowest validation loss (False: the
    final ones, which chapter 7's ablation compares).
    ``after_step``: passed to :func:`kr_utils.fit.fit` (the replication benchmark times steps with it)."""

    report: dict | None = None
    resume_path: str | Path | None = None
    desc: str | list = "train"
    select_best: bool = True
    after_step: Callable | None = None


def train_classifier(model, train, val, recipe: ClassifierRecipe, *, seed: int, device,
                     options: ClassifierOptions = ClassifierOptions()):
    """Train ``model`` by ``recipe`` (a :class:`kr_utils.config.ClassifierRecipe`), as
    ``options`` (:class:`ClassifierOptions`) says; returns ``(model, history)``: the weights of the
    epoch with the lowest validation loss (the final ones with ``options.select_best=False``),
    and the per-epoch curves.

    ``train``/``val``: tuples ``(x, labels)`` or ``(x, labels, teacher_logits)`` of tensors;
    with ``recipe.soft`` the third entry feeds :func:`distillation_loss`. The learning rate
    decays from ``recipe.lr`` to 0 over the run (cosine, per batch), which removes most of
    the epoch-to-epoch jitter of Adam at lr 0.002 with BatchNorm. Training stops after
    ``recipe.patience`` epochs without a lower validation loss.
    """
    return train_classifiers([model], [train], [val], recipe, seeds=[seed], device=device, options=options)[0]


@dataclass
class _Lanes:
    """How :func:`train_classifiers` trains and reads its seeds, one model alone
    (:func:`_one_model`) or several as one :class:`kr_utils.seedstack.SeedStack`
    (:func:`_seed_stack`): the module trained, its batcher, the loss of a batch (appending each
    seed's summed loss and the batch size to ``epoch_losses``), each seed's validation (loss,
    accuracy), each seed's accuracy on a reported set, and a copy of seed ``s``'s weights."""

    model: torch.nn.Module
    batcher: object
    loss: Callable
    scores: Callable
    reported: Callable
    state_of: Callable
    stacked: bool


def _one_model(model, train, val, recipe: ClassifierRecipe, batcher, device, epoch_losses: list) -> _Lanes:
    """One seed: its model trained as it is."""
    model = model.to(device).to(memory_format=torch.channels_last)
    net = compiled(model, device)

    def loss(idx):
        xb = augment(train[0][idx], batcher.draws) if recipe.augment else train[0][idx]
        out = net(channels_last(xb)).float()
        value = distillation_loss(out, train[1][idx], train[2][idx] if recipe.soft else None,
                                  recipe.temperature, recipe.alpha)
        epoch_losses.append((value.detach().float()[None] * len(idx), len(idx)))
        return value

    return _Lanes(model, batcher, loss, scores=lambda: [evaluate_loss(model, *val)],
                  reported=lambda xr, yr: [evaluate_loss(model, xr, yr)[1]],
                  state_of=lambda s: copy.deepcopy(model.state_dict()), stacked=False)


def _seed_stack(models, trains, vals, recipe: ClassifierRecipe, batchers, device, epoch_losses: list) -> _Lanes:
    """Several seeds as one batched model, each with its own data order and augmentation."""
    S = len(models)
    if len({len(tr[0]) for tr in trains}) > 1 or len({len(va[0]) for va in vals}) > 1:
        raise ValueError("seeds trained together need training sets of one size and validation sets of one size")
    model = SeedStack([m.to(device) for m in models]).to(device)
    net = compiled(model, device)
    val_x, val_y = _stack_inputs([va[0] for va in vals]), _stack_inputs([va[1] for va in vals])
    shared = [all(tr[k] is trains[0][k] for tr in trains) for k in range(len(trains[0]))]

    def batch(k, idx):  # element k of every seed's training set at that seed's batch: (S, B, ...)
        if shared[k]:
            return trains[0][k][idx]
        return torch.stack([trains[s][k][idx[s]] for s in range(S)])

    def loss(idx):
        xb = batch(0, idx)
        if recipe.augment:
            theta = torch.cat([affine_params(idx.shape[1], b.draws, device) for b in batchers])
            xb = apply_affine(xb.flatten(0, 1), theta).view_as(xb)
        out = net(xb).float()
        per_seed = distillation_losses(out, batch(1, idx), batch(2, idx) if recipe.soft else None,
                                       recipe.temperature, recipe.alpha)
        epoch_losses.append((per_seed.detach().float() * idx.shape[1], idx.shape[1]))
        return per_seed.sum()  # each seed's gradient is that of its own loss

    def reported(xr, yr):
        return [a for _, a in evaluate_losses(model, _stack_inputs([xr] * S), _stack_inputs([yr] * S))]

    return _Lanes(model, StackedBatcher(batchers), loss, scores=lambda: evaluate_losses(model, val_x, val_y),
                  reported=reported, state_of=model.state_of, stacked=True)


def train_classifiers(models: list, trains: list, vals: list, recipe: ClassifierRecipe, *, seeds, device,
                      options: ClassifierOptions = ClassifierOptions()) -> list[tuple]:
    """:func:`train_classifier` for several seeds of one architecture at once: ``models[s]``
    (initialised under ``seeds[s]``) learns ``trains[s]``, validated on ``vals[s]``, with its
    own data order and augmentation (generator ``seeds[s]``), its own early stopping and
    its own best epoch. One seed trains its model as it is (:func:`_one_model`); several train
    as one :class:`kr_utils.seedstack.SeedStack` (:func:`_seed_stack`; the ``group_seeds``
    lever decides whether a study calls this with several). The training sets must have one
    size, as must the validation sets. Returns ``[(model, history)]`` in the order of
    ``seeds``; a seed's history ends at its own early stop, though the stack trains on until
    every seed has stopped. ``options.desc`` may be one string or one per seed."""
    select_best = options.select_best
    S = len(models)
    if not (len(trains) == len(vals) == len(seeds) == S) or S == 0:
        raise ValueError(f"train_classifiers needs one train set, val set and seed per model: got {S} models, "
                         f"{len(trains)} train sets, {len(vals)} val sets, {len(seeds)} seeds")
    descs = [options.desc] * S if isinstance(options.desc, str) else list(options.desc)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    torch.manual_seed(seeds[0])  # dropout's masks come from the global generator, as seed_everything sets it
    moved = {}  # a tensor that several seeds share travels to the device once

    def to_dev(t):
        if id(t) not in moved:
            moved[id(t)] = t.to(device)
        return moved[id(t)]

    trains = [[to_dev(t) for t in tr] for tr in trains]
    vals = [[to_dev(t) for t in va[:2]] for va in vals]
    report = {k: [to_dev(t) for t in v] for k, v in (options.report or {}).items()}
    on_device = levers(device).device_batches
    batchers = [Batcher(len(tr[0]), recipe.batch_size, g, device=device if on_device else None)
                for tr, g in zip(trains, gens)]
    epoch_losses, t0 = [], [time.perf_counter()]  # this epoch's batch losses x sizes; its start
    lanes = (_seed_stack(models, trains, vals, recipe, batchers, device, epoch_losses) if S > 1 else
             _one_model(models[0], trains[0], vals[0], recipe, batchers[0], device, epoch_losses))
    model = lanes.model
    total = recipe.epochs * lanes.batcher.batches_per_epoch()
    opt = optimizer("adam", model.parameters(), recipe.lr, device)
    decay = (lambda i: 0.5 * (1 + math.cos(math.pi * i / total))) if recipe.lr_decay else (lambda i: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)

    def new_lane(s):
        hist = {"epoch": [], "train_loss": [], "val_loss": [], "val_acc": [], "epoch_time_s": []}
        hist.update({f"{k}_acc": [] for k in report})
        return {"hist": hist, "best": {"val_loss": float("inf"), "state": lanes.state_of(s), "epoch": 0},
                "bad_epochs": 0, "stopped": False, "final": None}

    state = {"lanes": [new_lane(s) for s in range(S)]}

    def after_epoch(epoch, st):
        n = sum(m for _, m in epoch_losses)
        train_loss = (torch.stack([lo for lo, _ in epoch_losses]).sum(0).double() / n).tolist() if epoch_losses else [float("nan")] * S
        epoch_losses.clear()
        scores = lanes.scores()
        reported = {k: lanes.reported(xr, yr) for k, (xr, yr) in report.items()}
        elapsed = time.perf_counter() - t0[0]
        t0[0] = time.perf_counter()
        for s, lane in enumerate(st["lanes"]):
            if lane["stopped"]:
                continue  # this seed's own run ended at its early stop
            h, (vl, va) = lane["hist"], scores[s]
            h["epoch"].append(epoch); h["train_loss"].append(train_loss[s])
            h["val_loss"].append(vl); h["val_acc"].append(va)
            for k in report:
                h[f"{k}_acc"].append(reported[k][s])
            h["epoch_time_s"].append(elapsed)
            if vl < lane["best"]["val_loss"]:
                lane["best"] = {"val_loss": vl, "state": lanes.state_of(s), "epoch": epoch}
                lane["bad_epochs"] = 0
            else:
                lane["bad_epochs"] += 1
            print(f"{descs[s]} epoch {epoch}: train loss {train_loss[s]:.4f}, val loss {vl:.4f}, val acc {va:.4f}"
                  + "".join(f", {k} acc {h[f'{k}_acc'][-1]:.4f}" for k in report))
            if lane["bad_epochs"] >= recipe.patience:
                lane["stopped"] = True
                lane["final"] = None if select_best or not lanes.stacked else lanes.state_of(s)
        return all(lane["stopped"] for lane in st["lanes"])

    fit_options = FitOptions(steps=total, amp=True, resume_path=options.resume_path,
                             desc=descs[0] if S == 1 else f"{descs[0]} (+{S - 1} seeds)")
    run = fit(model, lanes.loss, lanes.batcher, opt, fit_options, scheduler=sched, device=device,
              hooks=FitHooks(state=state, after_epoch=after_epoch, after_step=options.after_step))
    results = []
    for s, lane in enumerate(run.state["lanes"]):
        hist = lane["hist"]
        if select_best:
            weights = lane["best"]["state"]
        else:
            weights = lane["final"] if lane["final"] is not None else lanes.state_of(s)
        if lanes.stacked or select_best:
            models[s].load_state_dict(weights)
        hist["best_epoch"] = lane["best"]["epoch"] if select_best else hist["epoch"][-1]
        results.append((models[s], hist))
    finish(fit_options)
    return results


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


def train_student(train, val, recipe: ClassifierRecipe, *, seed: int, device, **options):
    """Train a fresh classifier of ``recipe.arch`` by ``recipe`` with :func:`train_classifier`
    (``options``: the fields of :class:`ClassifierOptions`). The initial weights depend on the seed
    alone, not on what ran before."""
    seed_everything(seed)
    return train_classifier(build_classifier(recipe.arch, **classes_of(train)), train, val, recipe, seed=seed,
                            device=device, options=ClassifierOptions(**options))


def train_students(trains: list, vals: list, recipe: ClassifierRecipe, *, seeds, device, **options) -> list[tuple]:
    """:func:`train_student` for several seeds at once (:func:`train_classifiers`): each
    model initialised under its own seed, exactly as its run alone would be."""
    models = []
    for s in seeds:
        seed_everything(s)
        models.append(build_classifier(recipe.arch, **classes_of(trains[len(models)])))
    return train_classifiers(models, trains, vals, recipe, seeds=list(seeds), device=device,
                             options=ClassifierOptions(**options))
