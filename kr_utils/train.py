"""Stage: training. Classifiers (teacher and student: Adam, early stopping on validation
loss, per-epoch curves), the distillation loss, and the diffusion model (L_simple with
class dropout for classifier-free guidance, EMA weights, milestone checkpoints).

Every loop resumes from its last saved state when it is interrupted and run again.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .artifacts import UnreadableFileError, atomic_torch_save, autocast, grad_scaler, read_torch_file, _plain
from .diffusion import alphas_cumprod, diffusion_loss, linear_beta_schedule, unet_memory_format
from .live import progress as progress_bar


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init, dropout) and return a generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index batches over ``n`` items, shuffled when a generator is given. Tensors stay
    where they are (CPU or GPU), which is faster than a DataLoader for in-memory data."""
    idx = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return idx.split(batch_size)


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


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last layout, in which the classifiers' convolutions run faster
    (``benchmarks/precision.py``, 2 CPU cores: training steps 1.4x in fp32, 1.2x in bf16);
    other tensors unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def read_resume_state(resume_path, device):
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


@torch.no_grad()
def _evaluate(model, x, y, batch_size=1000):
    model.eval()
    loss, correct = 0.0, 0
    for idx in batches(len(x), batch_size):
        with autocast(x.device):
            out = model(channels_last(x[idx])).float()
        loss += F.cross_entropy(out, y[idx], reduction="sum").item()
        correct += (out.argmax(1) == y[idx]).sum().item()
    return loss / len(x), correct / len(x)


def train_classifier(model, train, val, *, epochs: int, batch_size: int, lr: float, patience: int,
                     seed: int, device, soft: bool = False, temperature: float = 4.0, alpha: float = 0.5,
                     use_augment: bool = False, cosine: bool = True, report: dict | None = None,
                     resume_path: str | Path | None = None, desc: str = "train", select_best: bool = True):
    """Adam + early stopping on validation loss; returns (best model, history).

    ``train``/``val``: tuples ``(x, labels)`` or ``(x, labels, teacher_logits)`` of tensors;
    with ``soft=True`` the third entry feeds :func:`distillation_loss`.
    ``report``: extra ``{name: (x, y)}`` sets whose accuracy is only recorded per epoch
    (the student's real-test curve), never used for any decision.
    ``resume_path``: state saved after each epoch; an interrupted run continues from it.
    ``cosine``: decay the learning rate from ``lr`` to 0 over ``epochs`` (per batch), which
    removes most of the epoch-to-epoch jitter of Adam at lr 0.002 with BatchNorm.
    ``select_best=False``: keep the final weights instead of those of the best validation
    epoch (the ablation of chapter 7 compares the two).
    """
    gen = seed_everything(seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    train = [t.to(device) for t in train]
    val = [t.to(device) for t in val[:2]]
    report = {k: [t.to(device) for t in v] for k, v in (report or {}).items()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = grad_scaler(device)  # active under fp16 only (artifacts.precision)
    steps_per_epoch = math.ceil(len(train[0]) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda i: 0.5 * (1 + math.cos(math.pi * i / (epochs * steps_per_epoch)))) if cosine else (lambda i: 1.0))
    hist = {"epoch": [], "train_loss": [], "val_loss": [], "val_acc": [], "epoch_time_s": []}
    hist.update({f"{k}_acc": [] for k in report})
    best = {"val_loss": float("inf"), "state": copy.deepcopy(model.state_dict()), "epoch": 0}
    start_epoch = 1
    st = read_resume_state(resume_path, device)
    if st is not None:
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); gen.set_state(st["gen"])
        sched.load_state_dict(st["sched"])
        hist, best, start_epoch = st["hist"], st["best"], st["epoch"] + 1
    bad_epochs = 0 if start_epoch == 1 else start_epoch - 1 - best["epoch"]
    for epoch in range(start_epoch, epochs + 1):
        if bad_epochs >= patience:
            break
        t0 = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        for idx in progress_bar(batches(len(train[0]), batch_size, gen), desc=f"{desc} epoch {epoch}/{epochs}",
                        leave=False, mininterval=2):
            xb = train[0][idx]
            if use_augment:
                xb = augment(xb, gen)
            with autocast(device):
                out = model(channels_last(xb)).float()
            loss = distillation_loss(out, train[1][idx], train[2][idx] if soft else None, temperature, alpha)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += loss.item() * len(idx); n += len(idx)
        vl, va = _evaluate(model, *val)
        hist["epoch"].append(epoch); hist["train_loss"].append(total / n)
        hist["val_loss"].append(vl); hist["val_acc"].append(va)
        for k, (xr, yr) in report.items():
            hist[f"{k}_acc"].append(_evaluate(model, xr, yr)[1])
        hist["epoch_time_s"].append(time.perf_counter() - t0)
        if vl < best["val_loss"]:
            best = {"val_loss": vl, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
            bad_epochs = 0
        else:
            bad_epochs += 1
        print(f"{desc} epoch {epoch}: train loss {total / n:.4f}, val loss {vl:.4f}, val acc {va:.4f}"
              + "".join(f", {k} acc {hist[f'{k}_acc'][-1]:.4f}" for k in report))
        if resume_path is not None:
            atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                               "gen": gen.get_state(),
                               "hist": hist, "best": best, "epoch": epoch}, resume_path)
    if select_best:
        model.load_state_dict(best["state"])
    hist["best_epoch"] = best["epoch"] if select_best else hist["epoch"][-1]
    return model, hist


def _lr_lambda(warmup: int, total: int):
    # Linear warm-up then cosine decay to 10%: stable start, sharper final samples.
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))
    return f


@torch.no_grad()
def ema_update(ema_model, model, decay: float, step: int):
    """Exponential moving average of weights, with the usual warm-up of the decay so the
    average is not dominated by the random initialisation in short runs."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema_model.parameters(), model.parameters()):
        pe.lerp_(p, 1 - d)


def train_diffusion(model, images: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int,
                    lr: float, p_uncond: float, ema_decay: float, T: int, beta_start: float,
                    beta_end: float, seed: int, device, milestones=(), on_milestone=None,
                    resume_path: str | Path | None = None, save_every_s: float = 120.0):
    """Train the conditional U-Net on L_simple (eq. 4) for ``steps`` iterations.

    Returns ``(ema_model, losses)``; ``on_milestone(step, ema_model)`` is called at each
    milestone step (checkpoints for the degradation study).
    """
    gen = seed_everything(seed)
    fmt = unet_memory_format(device)
    model = model.to(device).to(memory_format=fmt)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ab = alphas_cumprod(linear_beta_schedule(T, beta_start, beta_end)).to(device)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(500, steps // 10 + 1), steps))
    losses, buf, step = [], [], 0
    st = read_resume_state(resume_path, device)
    if st is not None:
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"]); opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"]); gen.set_state(st["gen"]); losses, step = st["losses"], st["step"]
        print(f"resumed diffusion training at step {step}")
    amp, scaler = autocast(device), grad_scaler(device)  # the scaler acts under fp16 only
    last_save = time.perf_counter()
    order = iter(())
    bar = progress_bar(total=steps, initial=step, desc="diffusion", mininterval=2)
    while step < steps:
        idx = next(order, None)
        if idx is None or len(idx) < batch_size:
            order = iter(batches(len(images), batch_size, gen))
            continue
        model.train()
        with amp:
            loss = diffusion_loss(model, images[idx].contiguous(memory_format=fmt),
                                  labels[idx], ab, p_uncond, generator=None)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt); scaler.update(); sched.step()
        ema_update(ema, model, ema_decay, step)
        step += 1
        buf.append(loss.detach())  # no .item() per step: it would stall a GPU
        bar.update(1)
        if step % 50 == 0 or step == steps:
            losses.extend(torch.stack(buf).float().tolist()); buf.clear()
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        if on_milestone is not None and step in milestones:
            on_milestone(step, ema)
        if resume_path is not None and (time.perf_counter() - last_save > save_every_s or step == steps):
            atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                               "sched": sched.state_dict(), "gen": gen.get_state(), "losses": losses,
                               "step": step}, resume_path)
            last_save = time.perf_counter()
    bar.close()
    return ema, losses


def diffusion_for_profile(cfg: dict, fallback_steps: int, device, seed: int):
    """The pipeline's diffusion model for ``cfg``'s profile (chapter 2's ``diffusion.pt``)
    when it exists; otherwise a U-Net of the profile's size trained here for
    ``fallback_steps`` steps on real MNIST and cached as ``theory_diffusion.pt``, so a
    theory chapter opened on its own still runs. Returns ``(model, where_it_came_from)``."""
    from . import artifacts, data, models

    out = artifacts.artifact_dir(cfg["profile"])
    if (out / "diffusion.pt").exists():
        return artifacts.load_model(out / "diffusion.pt", "diffusion", device), "the pipeline's model (chapter 2)"
    dcfg = {**cfg["diffusion"], "steps": fallback_steps, "milestones": (fallback_steps,), "seed": seed}
    path = out / "theory_diffusion.pt"
    cached = artifacts.load_if_current(path, "diffusion", dcfg, cfg["profile"])
    if cached:
        return artifacts.load_model(path, "diffusion", device), f"a U-Net trained for {fallback_steps} steps here"
    unet = models.ConditionalUNet(base=dcfg["base"], mults=dcfg["mults"], attention=dcfg["attention"])
    images, labels = data.load_mnist("train")
    ema, losses = train_diffusion(unet, data.to_model_range(images), torch.as_tensor(labels).long(),
                                  steps=fallback_steps, batch_size=dcfg["batch_size"], lr=dcfg["lr"],
                                  p_uncond=dcfg["p_uncond"], ema_decay=dcfg["ema_decay"], T=dcfg["T"],
                                  beta_start=dcfg["beta_start"], beta_end=dcfg["beta_end"], seed=seed, device=device)
    artifacts.save_checkpoint(path, ema, kind="diffusion", config=dcfg, profile=cfg["profile"], seed=seed,
                              extra={"losses": losses, "unet": ema.config})
    return ema.eval(), f"a U-Net trained for {fallback_steps} steps here"


def history_plain(hist: dict) -> dict:
    return _plain(hist)


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


def train_student(train, val, scfg: dict, *, seed: int, device, **kwargs):
    """Train a fresh classifier of the config section ``scfg`` (arch, epochs, lr, and for a
    student soft, temperature, alpha, augment) with :func:`train_classifier`; ``kwargs`` pass
    through (report, resume_path, desc, select_best). A teacher's section, without the
    distillation keys, trains on hard labels without augmentation."""
    from .models import build_classifier

    seed_everything(seed)  # the initial weights depend on the seed alone, not on what ran before
    return train_classifier(
        build_classifier(scfg["arch"]), train, val, epochs=scfg["epochs"], batch_size=scfg["batch_size"],
        lr=scfg["lr"], patience=scfg["patience"], seed=seed, device=device, soft=scfg.get("soft", False),
        temperature=scfg.get("temperature", 4.0), alpha=scfg.get("alpha", 0.5),
        use_augment=scfg.get("augment", False), **kwargs)
