"""Figures shared by the notebooks: digit mosaics, training curves, confusion matrices."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def _to_display(images):
    """Accept model-range tensors (N,1,28,28) or uint8 arrays (N,28,28); return (N,28,28) in [0,1]."""
    if isinstance(images, torch.Tensor):
        return ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).squeeze(1).numpy()
    return np.asarray(images, dtype=np.float32) / 255.0


def mosaic(images, nrow: int, titles=None, row_labels=None, scale: float = 0.9, title=None):
    """A grid of digits, ``nrow`` rows, white on black as in MNIST."""
    imgs = _to_display(images)
    ncol = int(np.ceil(len(imgs) / nrow))
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * scale, nrow * scale), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]); ax.set_yticks([])
        if i < len(imgs):
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
        else:
            ax.axis("off")
    if row_labels is not None:
        for r, lab in enumerate(row_labels):
            axes[r, 0].set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mosaic_panels(panels: dict, row_labels=None, scale: float = 0.32):
    """Mosaics side by side, one per title of ``panels`` ({title: images}); each panel holds
    as many rows as ``row_labels`` (one per class), its images in class order, row by row."""
    nrow = len(row_labels) if row_labels is not None else 1
    tiles = {}
    for title, images in panels.items():
        imgs = _to_display(images)
        ncol = int(np.ceil(len(imgs) / nrow))
        full = np.zeros((nrow * ncol, *imgs.shape[1:]), np.float32)
        full[:len(imgs)] = imgs
        h, w = imgs.shape[1:]
        tiles[title] = full.reshape(nrow, ncol, h, w).transpose(0, 2, 1, 3).reshape(nrow * h, ncol * w)
    widths = [t.shape[1] for t in tiles.values()]
    fig, axes = plt.subplots(1, len(tiles), figsize=(sum(widths) / 28 * scale + 1.2, nrow * scale + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (title, tile) in zip(axes[0], tiles.items()):
        ax.imshow(tile, cmap="gray", vmin=0, vmax=1); ax.set_title(title, fontsize=9); ax.set_xticks([])
        h = tile.shape[0] / nrow
        ax.set_yticks([(r + 0.5) * h for r in range(nrow)] if row_labels is not None else [])
        ax.set_yticklabels(list(row_labels) if (row_labels is not None and ax is axes[0, 0]) else
                           [""] * (nrow if row_labels is not None else 0), fontsize=7)
    fig.tight_layout()
    return fig


def band_curves(runs: dict, keys=("val_loss", "val_acc"), xlabel="epoch", reference: dict | None = None):
    """One panel per key; per named group of runs (seeds), the mean over seeds with a band of
    +- one standard deviation. ``reference``: {key: (label, value)} drawn as a dashed line."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, hists in runs.items():
            n = min(len(h[key]) for h in hists)  # early stopping may end seeds at different epochs
            v = np.array([h[key][:n] for h in hists], dtype=float)
            x = np.arange(1, n + 1)
            mean = v.mean(0)
            (line,) = ax.plot(x, mean, marker="o", ms=3, label=f"{name} ({len(hists)} seed{'s' * (len(hists) > 1)})")
            if len(hists) > 1:
                sd = v.std(0, ddof=1)
                ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        if reference and key in reference:
            label, value = reference[key]
            ax.axhline(value, ls="--", c="0.4", lw=1, label=label)
        ax.set_xlabel(xlabel); ax.set_title(key.replace("_", " ")); ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def grouped_bars(series: dict, xlabel="digit", ylabel="", ylim=None, figsize=(7, 3)):
    """Side-by-side bars per category (x = 0..n-1), one colour per named series."""
    fig, ax = plt.subplots(figsize=figsize)
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        ax.bar(np.arange(len(values)) + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(range(len(values))); ax.set_xlabel(xlabel); ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8); ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def loss_curve(losses, window: int = 50):
    """Per-step diffusion loss with a moving average."""
    losses = np.asarray(losses)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(losses, alpha=0.3, lw=0.5, label="per step")
    if len(losses) >= window:
        ax.plot(np.arange(window - 1, len(losses)), np.convolve(losses, np.ones(window) / window, "valid"),
                label=f"mean of {window}")
    ax.set_xlabel("training step"); ax.set_ylabel("L_simple"); ax.set_yscale("log"); ax.legend(); ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def count_heatmap(counts, row_labels, xlabel: str, title: str | None = None, col_labels=None):
    """Counts (rows x classes, e.g. kept digits per label at each checkpoint) as a heatmap,
    each non-zero cell written in it; ``col_labels``: the class names (indices without)."""
    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(counts) + 1.2))
    ax.imshow(counts, cmap="Blues", aspect="auto", vmin=0)
    top = counts.max() if counts.size else 0
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                color="white" if counts[i, j] > 0.6 * top else "black")
    ax.set_xticks(range(counts.shape[1]))
    if col_labels is not None:
        ax.set_xticklabels(col_labels, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(row_labels)), labels=row_labels, fontsize=7)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def seed_bars(values: dict, reference_line: tuple[float, str] | None = None, xlabel: str = "real-test accuracy (%)",
              colors=None):
    """One horizontal bar per setting at the mean of its seeds, with every seed drawn as a point
    (so that a collapsed seed shows, and two seeds are never hidden behind an error bar).
    ``values``: ``{label: [accuracy in %, one per seed]}``; ``reference_line``: (x, label)."""
    labels = list(values)
    means = [float(np.mean(v)) for v in values.values()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    ax.barh(labels, means, color=colors or "0.75", alpha=0.6)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values.values()):
        ax.scatter(v, i + rng.uniform(-0.15, 0.15, len(v)), s=14, c="k", zorder=3)
    if reference_line is not None:
        ax.axvline(reference_line[0], ls="--", c="k", lw=1, label=reference_line[1])
        if len(labels) < 3:  # a short figure: below the axis the legend would sit on the axis label
            ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
        else:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1 - 0.5 / len(labels)),
                      frameon=False)
    lo = min(min(v) for v in values.values())
    ax.set_xlim(max(0, lo - 5), 100); ax.invert_yaxis(); ax.set_xlabel(xlabel); ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def confusion(cm, title="confusion matrix (real test set)", class_names=None):
    """A K x K confusion matrix (rows: the true class), on a log colour scale, each cell
    counted; ``class_names`` label the axes (the class indices without them)."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    named = class_names is not None and any(len(str(c)) > 2 for c in class_names)
    fig, ax = plt.subplots(figsize=(5.6, 5) if named else (4.6, 4))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6,
                        color="white" if i == j else "black")
    ax.set_xticks(range(k)); ax.set_yticks(range(k))
    if class_names is not None:
        ax.set_xticklabels(class_names, rotation=45 if named else 0, ha="right" if named else "center", fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
    ax.set_xlabel("predicted"); ax.set_ylabel("true"); ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def error_mosaic(x, labels, logits, idx, nrow: int = 2):
    """The digits ``idx`` of ``x`` titled true→predicted (confidence): a classifier's mistakes."""
    probs = torch.as_tensor(logits).float().softmax(1)
    return mosaic(x[idx], nrow=nrow, titles=[f"{int(labels[i])}→{int(probs[i].argmax())} ({probs[i].max():.2f})"
                                             for i in idx])


def glue_figure(name: str, fig) -> None:
    """Hand a figure to the book (``{glue:figure}``) as a PNG (:func:`kr_utils.live.figure_png`),
    and close it, so that the notebook does not also print it inline a second time."""
    from .live import figure_png, glue

    glue(name, figure_png(fig), display=False)


def points_animation(frames, titles, reference=None, lim: float = 4.0, fps: int = 6, dpi: int = 60,
                     colors=("tab:red", "tab:green", "tab:purple")):
    """An animated GIF of 2D point clouds, returned as HTML (an <img> with the GIF inline),
    so it plays in Jupyter, in Colab and in the static book alike.

    ``frames``: one dict per frame, mapping a legend label to an (N, 2) array;
    ``reference``: points drawn in light grey under every frame (e.g. the data).
    """
    import base64
    import tempfile
    from pathlib import Path

    from IPython.display import HTML
    from matplotlib import animation

    fig, ax = plt.subplots(figsize=(4.2, 4.2))

    def draw(i):
        ax.clear()
        if reference is not None:
            ax.scatter(*np.asarray(reference).T, s=2, c="0.8", label="data")
        for (label, pts), c in zip(frames[i].items(), colors):
            ax.scatter(*np.asarray(pts).T, s=3, c=c, alpha=0.6, label=label)
        ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal")
        ax.set_title(titles[i], fontsize=10); ax.legend(loc="upper left", fontsize=7, markerscale=3)

    anim = animation.FuncAnimation(fig, draw, frames=len(frames))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anim.gif"
        anim.save(path, writer=animation.PillowWriter(fps=fps), dpi=dpi)
        data = base64.b64encode(path.read_bytes()).decode()
    plt.close(fig)
    return HTML(f'<img src="data:image/gif;base64,{data}" alt="{titles[0]} ... {titles[-1]}"/>')


def reliability(named_bins: dict, title: str = "reliability on the real test set"):
    """Reliability diagrams side by side: per model (``{name: bins of kr_utils.audit.calibration}``),
    accuracy against mean confidence in each confidence bin, the diagonal being perfect
    calibration, and the share of predictions per bin beneath."""
    fig, axes = plt.subplots(2, len(named_bins), figsize=(3.2 * len(named_bins), 4.4), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    for (name, b), ax, hist in zip(named_bins.items(), axes[0], axes[1]):
        edges = np.array(b["edges"])
        mid, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        acc, conf = np.array(b["accuracy"], float), np.array(b["confidence"], float)
        ax.bar(mid, np.nan_to_num(acc), width=width, edgecolor="k", lw=0.4, color="tab:blue", label="accuracy")
        ax.bar(mid, np.nan_to_num(conf - acc), bottom=np.nan_to_num(acc), width=width, color="tab:red", alpha=0.35,
               label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_title(f"{name}\nECE {100 * b['ece']:.2f}%", fontsize=8); ax.set_ylim(0, 1)
        hist.bar(mid, np.array(b["count"]) / max(1, sum(b["count"])), width=width, color="0.5")
        hist.set_yscale("log"); hist.set_xlabel("confidence")
    axes[0, 0].set_ylabel("accuracy"); axes[1, 0].set_ylabel("share")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def summary_curves(series: dict, xlabel: str, ylabel: str, logx: bool = False, reference: tuple | None = None,
                   scale: float = 100.0):
    """One line per named series ``{name: {x: summary of kr_utils.evaluate.summarize_seeds}}``:
    the mean over seeds, with error bars of one std where there are several seeds.
    ``reference``: (label, value) drawn as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, points in series.items():
        xs = [x for x, s in points.items() if s is not None]
        mean = [scale * points[x]["mean"] for x in xs]
        err = [scale * (points[x]["std"] or 0) for x in xs]
        ax.errorbar(xs, mean, yerr=err, marker="o", ms=4, capsize=3, label=name)
    if reference:
        ax.axhline(scale * reference[1], ls="--", c="0.4", lw=1, label=reference[0])
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def threshold_sweep(sweep: dict):
    """Chapter 9's sweep: student accuracy (mean ± std over seeds) and the pool's acceptance
    against the confidence threshold (``{threshold: {"acceptance", "accuracy": summary or None}}``)."""
    done = {t: v["accuracy"] for t, v in sweep.items() if v["accuracy"] is not None}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.errorbar(list(done), [100 * s["mean"] for s in done.values()], yerr=[100 * (s["std"] or 0) for s in done.values()],
                marker="o", capsize=3, label="student accuracy (real test)")
    ax.set_xlabel("confidence threshold"); ax.set_ylabel("accuracy (%)"); ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(list(sweep), [100 * v["acceptance"] for v in sweep.values()], "s--", c="tab:orange", label="acceptance")
    ax2.set_ylabel("digits accepted (%)")
    fig.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.12, 0.2))
    fig.tight_layout()
    return fig


def per_class_measures(named: dict, measures=("frechet", "precision", "recall")):
    """One panel per measure, one line per named :func:`kr_utils.claims.distribution` (e.g. the
    real test digits, the floor, and the synthetic set), against the digit."""
    fig, axes = plt.subplots(1, len(measures), figsize=(10, 2.8))
    for ax, m in zip(axes, measures):
        for (who, d), c in zip(named.items(), ("0.5", "tab:blue", "tab:orange")):
            ks = sorted(d["per_class"])
            ax.plot(ks, [d["per_class"][k][m] for k in ks], "o-", c=c, label=who, ms=4)
        ax.set_title(m); ax.set_xlabel("class"); ax.set_xticks(sorted({k for d in named.values() for k in d["per_class"]}))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def degradation_curves(table, readings: dict, thesis_points: dict, thesis_epochs: int):
    """Chapter 6's figure, two panels against the fraction of the diffusion model's training.
    Left: each architecture's students (``table``, :func:`kr_utils.studies.degradation_seed_table`:
    the mean and its band) and the teacher's reading of the whole draw (black). Right: each
    architecture's real classifiers reading the whole draw (``readings``,
    :func:`kr_utils.studies.degradation_readings`). Both panels: the thesis' values
    (``thesis_points``, ``{arch: {epoch: accuracy}}`` of ``thesis_epochs``) dashed, one colour per
    architecture."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    frac = table["fraction_of_training"].astype(float)
    archs = list(dict.fromkeys([a for a in thesis_points if a in table.columns or a in readings]))
    colour = {a: f"C{i}" for i, a in enumerate(archs)}
    for arch in archs:
        if arch in table.columns:
            left.plot(frac, 100 * table[arch].astype(float), marker="o", color=colour[arch], label=f"{arch} students")
            left.fill_between(frac, 100 * table[f"{arch}_low"].astype(float), 100 * table[f"{arch}_high"].astype(float),
                              color=colour[arch], alpha=0.15)
        if arch in readings:
            steps = sorted(readings[arch])
            x = [frac[f"step_{s}"] for s in steps]
            mean, lo, hi = (np.array([readings[arch][s][i] for s in steps]) for i in range(3))
            right.plot(x, 100 * mean, marker="^", ls=":", color=colour[arch], label=f"{arch} trained on real digits")
            right.fill_between(x, 100 * lo, 100 * hi, color=colour[arch], alpha=0.15)
        th = thesis_points[arch]
        for ax in (left, right):
            ax.plot([e / thesis_epochs for e in th], [100 * v for v in th.values()], ls="--", marker="x",
                    color=colour[arch], alpha=0.6, label=f"{arch} (thesis)")
    left.plot(frac, 100 * table["requested_accuracy"].astype(float), color="k", marker="s", label="teacher on the whole draw")
    left.fill_between(frac, 100 * table["requested_low"].astype(float), 100 * table["requested_high"].astype(float),
                      color="k", alpha=0.1)
    left.set_title("students of each checkpoint's kept set (real test set)", fontsize=9)
    right.set_title("classifiers of real digits reading the whole draw", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("fraction of the diffusion model's training")
        ax.grid(alpha=0.3); ax.legend(fontsize=7)
    left.set_ylabel("accuracy (%)")
    fig.tight_layout()
    return fig


def boundary_and_draws(x, y, boundary, new_points, lim: float = 7.0):
    """Theory chapter 1's two panels: held-out points coloured by class with the line
    ``w0 x + w1 y + b = 0`` (``boundary``) of a logistic regression, and the same points in grey
    with new points drawn from a generative model."""
    w0, w1, b = boundary
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    axes[0].scatter(*x.T, c=y, cmap="coolwarm", s=4)
    axes[0].plot([-lim, lim], [(-b + lim * w0) / w1, (-b - lim * w0) / w1], "k")
    axes[0].set_title("discriminative: a boundary p(y|x) = 1/2", fontsize=9)
    axes[1].scatter(*x.T, c="0.8", s=4, label="real")
    axes[1].scatter(*new_points.detach().T, c="tab:green", s=4, label="drawn from p(x|y)")
    axes[1].set_title("generative: new points", fontsize=9)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    return fig


def density_fits(x, curves: dict):
    """A histogram of the 1-D data ``x`` with fitted densities (``{label: (grid, density)}``)
    over it (theory chapter 1)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(x, bins=60, density=True, color="0.75", label="training data")
    for (label, (grid, density)), c in zip(curves.items(), ("tab:orange", "tab:green", "tab:blue")):
        ax.plot(grid, density, c, lw=2, label=label)
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    return fig


def sample_panels(panels: dict, lim: float = 2.6):
    """One square panel per ``{title: (samples, held-out points)}``: held-out points in grey,
    samples in red (theory chapter 4)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (title, (s, held)) in zip(np.atleast_1d(axes), panels.items()):
        ax.scatter(*held.T, s=1, c="0.8", label="held-out data")
        ax.scatter(*s.T, s=1, c="tab:red", label="samples")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8, markerscale=5)
    return fig


def guidance_panels(sweep, data_spread: float = 0.5):
    """Theory chapter 5's sweep (a frame with method, strength, fraction_requested,
    spread_requested): the fraction of samples in the requested cluster and their spread per
    axis against the guidance strength, one line per method; dashed: the data's spread."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for method, part in sweep.groupby("method"):
        axes[0].plot(part["strength"], part["fraction_requested"], marker="o", label=method)
        axes[1].plot(part["strength"], part["spread_requested"], marker="o", label=method)
    axes[0].set_ylabel("fraction in requested cluster")
    axes[1].set_ylabel("spread per axis")
    axes[1].axhline(data_spread, c="0.5", ls="--", label="data")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=0.25)
        ax.set_xlim(-0.02, 40)
        ax.set_xlabel("guidance strength (s or w)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def commitment_curves(shifted: dict):
    """Theory chapter 8's commitment curves in shifted time, one per ``{N: curve}``
    (:func:`kr_utils.theory.analytic.commitment_in_shifted_time`), with the largest N's
    curvature and bimodality thresholds; the reverse run reads left to right."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for n, r in shifted.items():
        ax.plot(r["shift"], r["committed"], label=f"N = {n:,d}")
    r = shifted[max(shifted)]
    ax.axvline(r["s_curvature"], color="tab:red", ls="--", label="curvature threshold")
    ax.axvline(r["s_bimodal"], color="tab:blue", ls=":", label="bimodality threshold (speciation)")
    ax.set_xlim(-2, 4)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_xlabel(r"$s - \frac{1}{2}\log(N m^{*2})$ (reverse run: left to right)")
    ax.set_ylabel("fraction committed")
    return fig


def learning_curves(curves: dict, reference: tuple | None = None):
    """Accuracy against the training size (points per class, log scale), one line per
    ``{label: {n: (mean, low, high)}}`` with its interval as a band; ``reference``: (value,
    label) drawn dashed (theory chapter 1: the Bayes rate)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, by_n in curves.items():
        n = sorted(by_n)
        mean, lo, hi = (np.array([100 * by_n[k][i] for k in n]) for i in range(3))
        ax.plot(n, mean, marker="o", label=label)
        ax.fill_between(n, lo, hi, alpha=0.2)
    if reference is not None:
        ax.axhline(100 * reference[0], c="0.4", ls="--", label=reference[1])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training points per class")
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
