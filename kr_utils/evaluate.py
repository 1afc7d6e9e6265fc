"""Stage: evaluation on the real test set: accuracy, per-class accuracy, confusion
matrix, and mean +- std +- 95% CI over seeds."""
from __future__ import annotations

import time

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional.classification import multiclass_confusion_matrix

from .models import features, predict_logits  # noqa: F401  (evaluate's callers use them from here too)


def classification_report(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy, per-class accuracy (recall) and the K x K confusion matrix (rows = truth; K
    the classes of the logits)."""
    labels = torch.as_tensor(labels).long()
    pred = logits.argmax(1)
    cm = multiclass_confusion_matrix(pred, labels, num_classes=logits.shape[1])
    per_class = (cm.diag().float() / cm.sum(1).clamp(min=1).float())
    return {"accuracy": (pred == labels).float().mean().item(),
            "per_class_accuracy": per_class.tolist(), "confusion_matrix": cm.tolist(),
            "n": int(len(labels))}


def feature_diversity(feats: torch.Tensor, labels) -> float:
    """Mean pairwise Euclidean distance between digits of the same class, averaged over the
    classes with at least two digits: 0 when every digit of a class is the same image, larger
    when a generator covers more of each class."""
    labels = torch.as_tensor(labels)
    per_class = []
    for c in labels.unique():
        f = feats[labels == c]
        if len(f) > 1:
            d = torch.cdist(f, f)
            per_class.append(d.sum() / (len(f) * (len(f) - 1)))
    if not per_class:
        raise ValueError("feature_diversity needs a class with at least two digits")
    return float(torch.stack(per_class).mean())


def generation_quality(teacher, x: torch.Tensor, requested, threshold: float, device=None,
                       group_by_teacher: bool = False) -> dict:
    """What the teacher thinks of generated digits ``x`` (model range) asked for as classes
    ``requested``: mean confidence (max softmax), agreement of its argmax with the request,
    the fraction accepted at ``threshold``, and the diversity of its features per class (the
    requested class, or the teacher's own label with ``group_by_teacher``: for unconditional
    samples, whose requested class means nothing)."""
    requested = torch.as_tensor(requested)
    conf, pred = predict_logits(teacher, x, device=device).softmax(1).max(1)
    return {"confidence": float(conf.mean()), "agreement": float((pred == requested).float().mean()),
            "accepted": float((conf >= threshold).float().mean()),
            "diversity": feature_diversity(features(teacher, x, device=device), pred if group_by_teacher else requested)}


def most_confident_errors(logits: torch.Tensor, labels: torch.Tensor, k: int = 16) -> torch.Tensor:
    """Indices of the ``k`` misclassified digits with the highest max-softmax confidence."""
    conf, pred = logits.float().softmax(1).max(1)
    wrong = torch.nonzero(pred != labels).flatten()
    return wrong[conf[wrong].argsort(descending=True)[:k]]


def error_analysis(logits: torch.Tensor, labels: torch.Tensor, worst: int = 16, top: int = 5) -> dict:
    """A classifier's errors on a labelled set (chapter 6): accuracy, the confusion matrix, its
    ``top`` largest confusions and the indices of the ``worst`` most confident mistakes."""
    rep = classification_report(logits, labels)
    return {"accuracy": rep["accuracy"], "confusion_matrix": rep["confusion_matrix"],
            "top_confusions": top_confusions(rep["confusion_matrix"], top),
            "worst": most_confident_errors(logits, torch.as_tensor(labels).long(), worst)}


@torch.no_grad()
def inference_ms(model, x: torch.Tensor, device, n: int = 2000) -> float:
    """Milliseconds per image of ``model`` on ``device``, over up to ``n`` images of ``x`` in
    batches of 1,000 (after a warm-up pass)."""
    model.to(device).eval()
    predict_logits(model, x[:200], device=device)
    t0 = time.perf_counter()
    predict_logits(model, x[:n], device=device)
    return (time.perf_counter() - t0) / min(n, len(x)) * 1e3


def top_confusions(confusion: list, k: int = 5) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells as (true, predicted, count)."""
    cm = np.array(confusion)
    np.fill_diagonal(cm, 0)
    flat = np.argsort(cm, axis=None)[::-1][:k]
    k = cm.shape[1]
    return [(int(i // k), int(i % k), int(cm.flat[i])) for i in flat if cm.flat[i] > 0]


def summarize_seeds(values) -> dict:
    """mean, sample std and the Student-t 95% confidence interval of the mean over seeds.

    With a single seed the std and CI are undefined and reported as None.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("summarize_seeds needs at least one value")
    out = {"mean": float(v.mean()), "n": int(v.size), "values": v.tolist(), "std": None,
           "ci95": None}
    if v.size > 1:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.975, v.size - 1) * sd / np.sqrt(v.size))
        out.update(std=sd, ci95=[float(v.mean() - half), float(v.mean() + half)])
    return out


MIN_SEEDS_FOR_INTERVAL = 3  # with two seeds the t interval is ± 12.7 std: it says nothing, so none is printed


def format_summary(summary: dict, digits: int = 2, seeds: bool = False) -> str:
    """'99.41 ± 0.03% [99.36, 99.46]' from :func:`summarize_seeds` of accuracies (fractions): the
    mean, the std over seeds and the 95% t interval of the mean over training seeds. A single
    seed prints its value alone; two seeds (fewer than :data:`MIN_SEEDS_FOR_INTERVAL`) print
    the mean and each seed, no interval; ``seeds`` appends each seed's value
    ('... (seeds: 99.38, 99.41, 99.44)'), for tables where seeds disagree widely."""
    pct = lambda v: f"{100 * v:.{digits}f}"  # noqa: E731
    if summary["std"] is None:
        return f"{pct(summary['mean'])}% (1 seed)"
    listed = ', '.join(pct(v) for v in summary['values'])
    if summary["n"] < MIN_SEEDS_FOR_INTERVAL:
        return f"{pct(summary['mean'])}% ({summary['n']} seeds: {listed})"
    lo, hi = summary["ci95"]
    each = f" (seeds: {listed})" if seeds else ""
    return f"{pct(summary['mean'])} ± {pct(summary['std'])}% [{pct(lo)}, {pct(hi)}]{each}"

def correct_on(runs, y_test) -> np.ndarray:
    """Right or wrong on each test digit, one row per run (``{seed: run}`` or a list of runs,
    each with its ``test_logits``): what :mod:`kr_utils.comparison` compares."""
    runs = list(runs.values()) if isinstance(runs, dict) else list(runs)
    y = torch.as_tensor(y_test)
    return np.stack([(torch.as_tensor(r["test_logits"]).argmax(1) == y).numpy() for r in runs])


def format_interval(runs, y_test, digits: int = 2) -> str:
    """'99.13% [98.95, 99.30] (seeds: 99.10, 99.12, 99.17)': the mean test accuracy of ``runs``
    (:func:`correct_on`) with its 95% interval over the training seeds *and* the test digits
    (:func:`kr_utils.comparison.accuracy_interval`), then each seed's accuracy."""
    from .comparison import accuracy_interval

    correct = correct_on(runs, y_test)
    mean, lo, hi = accuracy_interval(correct)
    pct = lambda v: f"{100 * v:.{digits}f}"  # noqa: E731
    each = ", ".join(pct(v) for v in correct.mean(1))
    return f"{pct(mean)}% [{pct(lo)}, {pct(hi)}] ({'seeds' if len(correct) > 1 else 'one seed'}: {each})"


def ordering_sentence(summaries: dict, reference: list) -> str:
    """Whether ``summaries`` ({name: :func:`summarize_seeds` of accuracies}) rank as ``reference``
    (names, best first), and whether each neighbour in the ranking is separated by their 95%
    intervals over seeds: 'the same ordering here; the intervals of a and b overlap, ...'."""
    order = sorted(summaries, key=lambda k: -summaries[k]["mean"])
    ranked = [k for k in reference if k in summaries]
    head = "the same ordering here" if order == ranked else f"here the ordering is {', then '.join(order)}"
    close = []
    for a, b in zip(order, order[1:]):
        ca, cb = summaries[a]["ci95"], summaries[b]["ci95"]
        if ca is None or cb is None or ca[0] <= cb[1]:
            close.append(f"{a} and {b}")
    if not close:
        return head + ", each neighbour apart by its 95% interval over seeds"
    return head + f"; the 95% intervals over seeds of {'; of '.join(close)} overlap (or are missing), so these seeds do not rank them"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 epoch', '3 epochs', '20,000 digits': ``n`` and ``noun``, made plural (``plural``, else
    ``noun`` + 's') unless ``n`` is one; for the sentences a chapter glues from its profile."""
    return f"{n:,d} {noun if n == 1 else plural or noun + 's'}"


def error_share_within(confusion, members) -> float:
    """The share of a classifier's errors (off-diagonal cells of ``confusion``, rows = truth)
    whose true and predicted class are both among ``members`` (class indices): how much of
    what it gets wrong is confusing classes of one group with each other."""
    cm = np.array(confusion)
    np.fill_diagonal(cm, 0)
    total = cm.sum()
    if total == 0:
        return 0.0
    m = np.asarray(list(members))
    return float(cm[np.ix_(m, m)].sum() / total)
