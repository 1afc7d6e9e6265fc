"""Theory chapter T7: restoring damaged digits with the pipeline's reverse process, the
measures of its inpainting study (`001` Fig. 10, holes of 14x14 and 18x18 pixels)."""
from __future__ import annotations

import pandas as pd
import torch

from .. import data, diffusion


def test_digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real MNIST test digits in the model range and their labels, classes 0-9 in turn
    (the first of each, then the second, ...: :func:`kr_utils.data.classes_in_turn`)."""
    images, labels = data.load_mnist("test")
    picked = data.classes_in_turn(labels, n)
    return data.to_model_range(images[picked]), torch.as_tensor(labels[picked]).long()


def pixel_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean squared error in [0, 1] pixel units (images in [-1, 1]), only where ``mask`` == 1 if given."""
    d = ((a - b) / 2) ** 2
    return (d * mask).sum().item() / mask.sum().item() if mask is not None else d.mean().item()


def square_hole(x: torch.Tensor, size: int) -> torch.Tensor:
    """A mask like ``x`` (N, 1, H, W): 1 on the known pixels, 0 in the centred ``size`` x ``size`` hole."""
    h, w = x.shape[-2:]
    if not isinstance(size, int) or not 0 < size < min(h, w):
        raise ValueError(f"hole size must be an integer in [1, {min(h, w) - 1}], got {size!r}")
    top, left = (h - size) // 2, (w - size) // 2
    mask = torch.ones_like(x)
    mask[..., top:top + size, left:left + size] = 0
    return mask


def inpainting_study(unet, sampler, x0: torch.Tensor, y: torch.Tensor, size: int, seed: int,
                     progress: bool = True) -> tuple[pd.Series, dict]:
    """Destroy a centred ``size`` x ``size`` hole in ``x0`` and generate it back with
    :func:`kr_utils.diffusion.inpaint`, without the class (the null token) and with ``y``, each
    from the same noise (one generator seeded alike for both: the two fills are paired draw for
    draw, so their difference is the class's alone). Returns the errors in the hole (and the
    change of the known pixels, which must be 0) and the image rows ``{"damaged", "no class",
    "with class"}``."""
    mask = square_hole(x0, size)
    damaged = torch.where(mask.bool(), x0, torch.full_like(x0, -1.0))
    fill = lambda labels: diffusion.inpaint(unet, sampler, x0, mask, labels, 1.0,  # noqa: E731
                                            torch.Generator().manual_seed(seed), progress=progress)
    no_class, with_class = fill(torch.full_like(y, unet.null_class)), fill(y)
    hole = 1 - mask
    table = pd.Series({"hole left black": pixel_mse(damaged, x0, hole),
                       "inpainted, no class": pixel_mse(no_class, x0, hole),
                       "inpainted, with class": pixel_mse(with_class, x0, hole),
                       "known pixels changed": max(pixel_mse(no_class, x0, mask), pixel_mse(with_class, x0, mask))},
                      name=f"MSE, {size}x{size} hole")
    return table, {"damaged": damaged, "no class": no_class, "with class": with_class}


def hole_difference(fill: torch.Tensor, other: torch.Tensor, x0: torch.Tensor, size: int) -> tuple[float, float, float]:
    """The in-hole squared error of ``fill`` minus that of ``other`` (both against ``x0``, the
    centred ``size`` x ``size`` hole, [0, 1] pixel units), paired digit by digit: the mean over
    the digits and its 95% interval (Student's t over the digits,
    :func:`kr_utils.comparison.mean_interval`). Above 0: ``fill`` is further from the truth."""
    from ..comparison import mean_interval

    hole = 1 - square_hole(x0, size)
    per_digit = lambda a: ((((a - x0) / 2) ** 2) * hole).flatten(1).sum(1) / hole.flatten(1).sum(1)  # noqa: E731
    return mean_interval((per_digit(fill) - per_digit(other)).double().numpy()[None])


def class_difference(with_class: torch.Tensor, without: torch.Tensor, x0: torch.Tensor) -> tuple[float, float, float]:
    """The squared error per pixel ([0, 1] units) of reconstructions made with the class minus
    that of those made without it from the same noise, paired digit by digit: the mean over the
    digits and its 95% interval (Student's t over the digits,
    :func:`kr_utils.comparison.mean_interval`). Below 0: the class brings the rebuilt digit closer."""
    from ..comparison import mean_interval

    per_digit = lambda a: (((a - x0) / 2) ** 2).flatten(1).mean(1)  # noqa: E731
    return mean_interval((per_digit(with_class) - per_digit(without)).double().numpy()[None])


def class_texts(diffs: dict) -> dict:
    """Theory chapter 7's sentences on :func:`class_difference` at each starting step
    (``{t0: (mean, low, high)}``): each difference with its interval, and the steps at which the
    class measurably helps, hurts, or neither."""
    word = {t: "lower" if hi < 0 else "higher" if lo > 0 else "none" for t, (_, lo, hi) in diffs.items()}
    said = []
    for w, phrase in (("lower", "brings the rebuilt digit measurably closer to the original at"),
                      ("higher", "moves it measurably further from the original at"),
                      ("none", "makes no measurable difference at")):
        steps = [f"t0 = {t}" for t in diffs if word[t] == w]
        if steps:
            said.append(f"{phrase} {', '.join(steps)}")
    return {"t7_class_diffs": "; ".join(f"t0 = {t}: {m:+.4f} [{lo:+.4f}, {hi:+.4f}]" for t, (m, lo, hi) in diffs.items()),
            "t7_class_reading": "the class " + "; ".join(said)}


def recon_texts(recon, n: int) -> dict:
    """Theory chapter 7's numbers of its reconstructions (``recon``: one row per starting step
    t0): the error without the class at each t0, and how many of the ``n`` digits the teacher
    still reads as their class."""
    out = {f"t7_mse_{t0}": f"{recon.loc[t0, 'reconstruction, no class']:.4f}" for t0 in recon.index}
    out["t7_reads"] = ", ".join(f"{round(n * recon.loc[t0, 'teacher reads the class, no class given'])} of {n}"
                                for t0 in recon.index)
    return out
