"""Stage: the one training loop. Every model of the book (teacher, students, the U-Net, the
theory chapters' toy models and autoencoders) is trained by :func:`fit`: a loss on a batch of
indices, an optimiser and an optional learning-rate schedule, with autocast, gradient
clipping, EMA weights, a progress bar and checkpoint/resume as options.

A run saves its whole state (weights, optimiser, schedule, EMA, the batcher's position and
generator, torch's global random state, and what the caller keeps in ``state``) at the end of
each epoch or every ``save_every_s`` seconds; run again after an interruption it continues
from there and ends with the same weights as a run that was never interrupted
(``tests/test_fit.py``).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .data import Batcher
from .live import progress as progress_bar
from .runtime import autocast, grad_scaler, levers
from .store import UnreadableFileError, atomic_torch_save, read_torch_file


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init, dropout) and return a generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def built_from_seed(build, seed: int):
    """``build()`` (a model's constructor) with torch's global RNG seeded by ``seed`` for it
    and restored afterwards: the initial weights are a function of ``seed`` alone, whatever ran
    before, and nothing after sees a changed generator. Two models built from one seed start
    from the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@torch.no_grad()
def ema_update(ema_model, model, decay: float, step: int, foreach: bool = True):
    """Exponential moving average of weights, with the usual warm-up of the decay so the
    average is not dominated by the random initialisation in short runs. ``foreach`` (the
    ``foreach_ema`` lever): one multi-tensor ``lerp`` over all parameters instead of a kernel
    per parameter (111 launches a step for the gpu profile's U-Net). Buffers (BatchNorm's
    running statistics) are copied, not averaged, as lucidrains' ``ema-pytorch`` does
    (``torch.optim.swa_utils.AveragedModel`` leaves them at their initialisation unless
    ``use_buffers``): the averaged network keeps the statistics of the network it follows
    (the U-Net has none; a classifier with BatchNorm has)."""
    d = min(decay, (1 + step) / (10 + step))
    ema_p, p = list(ema_model.parameters()), list(model.parameters())
    if foreach:
        torch._foreach_lerp_(ema_p, p, 1 - d)
    else:
        for pe, pm in zip(ema_p, p):
            pe.lerp_(pm, 1 - d)
    for be, bm in zip(ema_model.buffers(), model.buffers()):
        be.copy_(bm)


def optimizer(kind: str, params, lr: float, device, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam or AdamW over ``params``: fused into one kernel where the ``fused_optimizer`` lever
    is on (a CUDA GPU by default), else torch's default (multi-tensor on a GPU, a loop on a CPU)."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(kind)
    if cls is None:
        raise ValueError(f"optimizer kind must be 'adam' or 'adamw', got {kind!r}")
    params = list(params)
    if levers(device).fused_optimizer:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    return cls(params, lr=lr, weight_decay=weight_decay)


def compiled(model: torch.nn.Module, device):
    """``model`` itself, or ``torch.compile(model)`` where the ``compile`` lever is on (in
    ``reduce-overhead`` mode, CUDA graphs, with ``cuda_graphs``). The compiled module shares
    the model's parameters: train the model, call the compiled one. A graph that cannot be
    compiled runs eagerly instead of failing the run."""
    lv = levers(device)
    if not lv.compile:
        return model
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # fall back to eager code, never fail a chapter
    return torch.compile(model, mode="reduce-overhead" if lv.cuda_graphs else None, dynamic=False)


def read_resume_state(resume_path):
    """The state an interrupted training run saved at ``resume_path`` (None when there is none).
    A file that cannot be read (cut short by a kill, half-synced) is set aside with a printed
    line, and the run starts over."""
    if resume_path is None or not Path(resume_path).exists():
        return None
    try:
        state = read_torch_file(resume_path, "a saved training state")
        if not isinstance(state, dict) or "model" not in state:
            raise UnreadableFileError(f"{resume_path} holds no saved training state")
    except UnreadableFileError as err:
        print(f"starting this training run over: {err}")
        Path(resume_path).unlink(missing_ok=True)
        return None
    return state  # on the CPU: load_state_dict moves weights and optimiser state to the model's device


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` trains (what it trains is its arguments).

    ``steps``: optimiser updates in all. ``amp``: network passes under the autocast of
    :func:`kr_utils.runtime.precision` (with a gradient scaler under fp16). ``clip_grad``: the
    largest gradient norm. ``ema_decay``: keep an exponential moving average of the weights.
    ``resume_path``: where the run's state is saved: at the end of each epoch of the batcher
    (``save_at_epoch_end``), every ``save_every_s`` seconds, and after the last step.
    ``loss_every``: how often the per-step losses are copied off the device (never per step:
    that stalls a GPU)."""

    steps: int
    amp: bool = False
    clip_grad: float | None = None
    ema_decay: float | None = None
    resume_path: str | Path | None = None
    save_every_s: float | None = None
    save_at_epoch_end: bool = True
    desc: str = "train"
    progress: bool = True
    loss_every: int = 50

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")


@dataclass
class FitResult:
    """What :func:`fit` returns: the model (EMA weights when ``ema_decay`` was set: ``ema``),
    the per-step losses, the steps done (fewer than asked when ``after_epoch`` stopped it),
    and the caller's ``state``."""

    model: torch.nn.Module
    losses: list[float]
    steps: int
    state: dict = field(default_factory=dict)
    ema: torch.nn.Module | None = None


@dataclass(frozen=True)
class FitHooks:
    """What the caller of :func:`fit` adds to its loop. ``after_step(step, ema_or_model)`` runs
    after each update (milestone checkpoints, step timing); ``after_epoch(epoch, state)`` after
    each epoch of the batcher, and stops the run by returning True (early stopping). ``state``
    is the caller's own record (curves, the best weights), saved and restored with the run."""

    state: dict | None = None
    after_step: Callable | None = None
    after_epoch: Callable | None = None


def fit(model: torch.nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], batcher: Batcher,
        optimizer: torch.optim.Optimizer, options: FitOptions, *, scheduler=None, device=None,
        hooks: FitHooks = FitHooks()) -> FitResult:
    """Train ``model`` for ``options.steps`` updates of ``loss_fn(batch_indices)``.

    ``batcher`` (:class:`kr_utils.data.Batcher`) serves the indices; ``scheduler`` steps once
    per update; ``hooks`` (:class:`FitHooks`) run after each update and each epoch."""
    state = {} if hooks.state is None else hooks.state
    after_step, after_epoch = hooks.after_step, hooks.after_epoch
    device = torch.device(device) if device is not None else next(model.parameters()).device
    lv = levers(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if options.ema_decay is not None else None
    amp = autocast(device) if options.amp else torch.autocast(device.type, enabled=False)
    scaler = grad_scaler(device) if options.amp else torch.amp.GradScaler(device.type, enabled=False)
    losses, buf, step = [], [], 0
    saved = read_resume_state(options.resume_path)
    if saved is not None:
        model.load_state_dict(saved["model"]); optimizer.load_state_dict(saved["opt"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["sched"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        batcher.load_state_dict(saved["batcher"])
        torch.set_rng_state(saved["rng"])
        if saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        losses, step = saved["losses"], saved["step"]
        state.update(saved["state"])
        print(f"{options.desc}: resumed at step {step} of {options.steps}")

    def save():
        if options.resume_path is None:
            return
        atomic_torch_save({"model": model.state_dict(), "opt": optimizer.state_dict(),
                           "sched": scheduler.state_dict() if scheduler is not None else None,
                           "ema": ema.state_dict() if ema is not None else None,
                           "batcher": batcher.state_dict(), "rng": torch.get_rng_state(),
                           "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                           "losses": losses, "step": step, "state": state}, options.resume_path)

    def flush():
        if buf:
            losses.extend(torch.stack(buf).float().tolist()); buf.clear()

    last_save = time.perf_counter()
    bar = progress_bar(total=options.steps, initial=step, desc=options.desc, disable=not options.progress,
                       mininterval=2, leave=False)
    stopped = False
    while step < options.steps and not stopped:
        idx = next(batcher)
        model.train()
        if lv.cuda_graphs and lv.compile:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may be overwritten
        with amp:
            loss = loss_fn(idx)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if options.clip_grad is not None:
            scaler.unscale_(optimizer)  # clip the true gradients
            if hasattr(model, "clip_grad_norm_"):  # a SeedStack clips each seed by its own norm
                model.clip_grad_norm_(options.clip_grad)
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.clip_grad)  # foreach on a GPU
        scaler.step(optimizer); scaler.update()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema_update(ema, model, options.ema_decay, step, foreach=lv.foreach_ema)
        step += 1
        buf.append(loss.detach())
        bar.update(1)
        if step % options.loss_every == 0 or step == options.steps:
            flush()
            bar.set_postfix(loss=f"{sum(losses[-options.loss_every:]) / len(losses[-options.loss_every:]):.4f}")
        if after_step is not None:
            after_step(step, ema if ema is not None else model)
        epoch_end = batcher.at_epoch_end()
        if epoch_end and after_epoch is not None:
            flush()
            stopped = bool(after_epoch(batcher.epoch_index, state))
        timed = options.save_every_s is not None and time.perf_counter() - last_save > options.save_every_s
        if (epoch_end and options.save_at_epoch_end) or timed or step == options.steps:
            flush()
            save()
            last_save = time.perf_counter()
    bar.close()
    flush()
    return FitResult(model=ema if ema is not None else model, losses=losses, steps=step, state=state, ema=ema)


def finish(options: FitOptions) -> None:
    """Remove the saved state of a finished run (its results are kept elsewhere)."""
    if options.resume_path is not None:
        Path(options.resume_path).unlink(missing_ok=True)
