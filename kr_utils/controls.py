"""The book's live controls (ipywidgets), built by :func:`kr_utils.live.show_controls` only
where a person is looking. Each widget redraws a figure made by a plain function (``*_frame``)
that the tests call directly, and whose output at the profile's settings is the static figure
of the page.

- chapter 3: :func:`sampling_controls` (digit, guidance weight w, sampler and steps, clipping
  of x0_hat, seed) samples from the trained U-Net;
- chapter 4: :func:`threshold_controls` (the teacher's confidence threshold) shows the digits
  it keeps and rejects;
- chapter T4: :func:`trajectory_controls` (a slider over the reverse steps of the 2-D toy).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from . import plots
from .config import SAMPLERS, SamplerConfig
from .diffusion import SAMPLERS as SAMPLER_CLASSES
from .diffusion import NoiseSchedule, build_sampler, generate
from .models import predict_logits


def trajectory_frame(traj: dict, t, labels, reference=None, lim: float = 5.0):
    """One frame of a 2-D reverse trajectory (``traj[t]``: points at step t), coloured by the
    asked class, over the ``reference`` data in grey: the callback of :func:`trajectory_controls`."""
    import matplotlib.pyplot as plt

    if t not in traj:
        raise KeyError(f"no saved step t={t}; saved steps: {sorted(traj)}")
    fig, ax = plt.subplots(figsize=(4, 4))
    if reference is not None:
        ax.scatter(*reference.T, s=2, c="0.8")
    ax.scatter(*traj[t].T, s=3, c=labels, cmap="coolwarm", alpha=0.6)
    ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal"); ax.set_title(f"t = {t}")
    return fig


def trajectory_controls(traj: dict, labels, reference=None, lim: float = 5.0):
    """A slider over the saved steps of ``traj`` redrawing :func:`trajectory_frame` (chapter T4)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    order = sorted(traj, reverse=True)

    def draw(t):
        trajectory_frame(traj, t, labels, reference, lim)
        plt.show()

    return widgets.interactive(draw, t=widgets.SelectionSlider(options=order, value=order[0], description="t"))



@dataclass(frozen=True)
class SamplingKnobs:
    """The settings of :func:`sampling_frame`: the ``digit`` to draw, guidance weight ``w``
    (eq. 5), the ``sampler`` on ``steps`` steps, x0_hat clipping on or off (``clip``), and the
    ``seed`` of the noise; :func:`sampling_controls` makes one widget of each."""

    digit: int = 0
    w: float = 1.0
    sampler: str = "ddim"
    steps: int = 20
    clip: bool = True
    seed: int = 0


def sampling_frame(unet, schedule: NoiseSchedule, knobs: SamplingKnobs = SamplingKnobs(), n: int = 16):
    """``n`` digits drawn from ``unet`` as ``knobs`` (:class:`SamplingKnobs`) say: the callback
    of :func:`sampling_controls`. ``schedule``: the model's noise schedule."""
    digit, w, sampler, steps, clip, seed = (knobs.digit, knobs.w, knobs.sampler, knobs.steps, knobs.clip,
                                            knobs.seed)
    if not 0 <= digit < unet.null_class:
        raise ValueError(f"digit must be in [0, {unet.null_class}), got {digit}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    s = SAMPLER_CLASSES[sampler](schedule, clip_x0=clip)
    s.set_timesteps(steps)
    labels = torch.full((n,), int(digit), dtype=torch.long)
    x = generate(unet, s, labels, w, torch.Generator().manual_seed(int(seed)))
    title = f"digit {digit}, w = {w:g}, {sampler} {steps} steps, clip {'on' if clip else 'off'}, seed {seed}"
    return plots.mosaic(x.cpu(), nrow=2, title=title)


def sampling_controls(unet, schedule: NoiseSchedule, knobs: SamplingKnobs = SamplingKnobs(), n: int = 16):
    """Controls over :func:`sampling_frame`, starting at ``knobs`` (a button draws, so a slider
    drag costs nothing)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    d = dataclasses.asdict(knobs)

    def draw(**values):
        sampling_frame(unet, schedule, SamplingKnobs(**values), n)
        plt.show()

    return widgets.interactive(
        draw, {"manual": True, "manual_name": "sample"},
        digit=widgets.IntSlider(d["digit"], 0, unet.null_class - 1, description="digit"),
        w=widgets.FloatSlider(d["w"], min=0.0, max=5.0, step=0.25, description="guidance w"),
        sampler=widgets.Dropdown(options=SAMPLERS, value=d["sampler"], description="sampler"),
        steps=widgets.IntSlider(d["steps"], 1, schedule.T, description="steps"),
        clip=widgets.Checkbox(d["clip"], description="clip x0_hat"),
        seed=widgets.IntText(d["seed"], description="seed"))


def threshold_frame(images, confidences, threshold: float, n: int = 12):
    """The first ``n`` digits the teacher keeps at ``threshold`` (confidence >= threshold) and
    the first ``n`` it rejects, with their confidences: the callback of :func:`threshold_controls`."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    conf = torch.as_tensor(confidences)
    kept, rejected = (conf >= threshold).nonzero()[:, 0], (conf < threshold).nonzero()[:, 0]
    rows = [(f"kept ({len(kept)})", kept[:n]), (f"rejected ({len(rejected)})", rejected[:n])]
    shown = [i for _, idx in rows for i in idx.tolist()]
    blank = torch.full_like(torch.as_tensor(images[:1]), -1.0)
    grid, titles = [], []
    for _, idx in rows:
        for j in range(n):
            if j < len(idx):
                grid.append(torch.as_tensor(images[idx[j]])[None]); titles.append(f"{conf[idx[j]]:.2f}")
            else:
                grid.append(blank); titles.append("")
    fig = plots.mosaic(torch.cat(grid), nrow=2, titles=titles, row_labels=[r[0] for r in rows], scale=1.1,
                       title=f"teacher's confidence threshold {threshold:.2f}")
    for k, ax in enumerate(fig.axes):  # empty slots (fewer digits than n) left blank, row labels kept
        if titles[k] == "" and k % n:
            ax.axis("off")
            ax.images[0].set_visible(False)
    fig.shown = shown  # which digits were drawn (the tests read it)
    return fig


def threshold_controls(images, confidences, threshold: float, n: int = 12):
    """A slider over the confidence threshold redrawing :func:`threshold_frame` (chapter 4)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(threshold):
        threshold_frame(images, confidences, threshold, n)
        plt.show()

    return widgets.interactive(draw, threshold=widgets.FloatSlider(threshold, min=0.05, max=1.0, step=0.01,
                                                                   description="threshold"))


def confidence_demo(unet, teacher, schedule: NoiseSchedule, sampling: SamplerConfig, seed: int, per_class: int = 10):
    """``per_class`` fresh digits of each class with the profile's sampler settings
    (``sampling``), and the teacher's confidence in each: the digits that
    :func:`threshold_controls` sorts into kept and rejected."""
    s = build_sampler(sampling, schedule)
    labels = torch.arange(unet.null_class).repeat(per_class)
    x = generate(unet, s, labels, sampling.guidance_w, torch.Generator().manual_seed(seed),
                 x_T_scale=sampling.x_T_scale).cpu()
    device = next(teacher.parameters()).device
    conf = predict_logits(teacher, x, device=device).float().softmax(1).max(1).values.cpu()
    return x, conf
