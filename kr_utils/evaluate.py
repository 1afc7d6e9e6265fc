"""Stage: evaluation on the real MNIST test set: accuracy, per-class accuracy, confusion
matrix, and mean +- std +- 95% CI over seeds."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional.classification import multiclass_confusion_matrix

from .train import batches


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int = 1000, device=None) -> torch.Tensor:
    """Logits for model-range images ``x`` (N,1,28,28), computed in batches, returned on CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    return torch.cat([model(x[idx].to(device)).float().cpu() for idx in batches(len(x), batch_size)])


def classification_report(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy, per-class accuracy (recall) and the 10x10 confusion matrix (rows = truth)."""
    labels = torch.as_tensor(labels).long()
    pred = logits.argmax(1)
    cm = multiclass_confusion_matrix(pred, labels, num_classes=10)
    per_class = (cm.diag().float() / cm.sum(1).clamp(min=1).float())
    return {"accuracy": (pred == labels).float().mean().item(),
            "per_class_accuracy": per_class.tolist(), "confusion_matrix": cm.tolist(),
            "n": int(len(labels))}


def top_confusions(confusion: list, k: int = 5) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells as (true, predicted, count)."""
    cm = np.array(confusion)
    np.fill_diagonal(cm, 0)
    flat = np.argsort(cm, axis=None)[::-1][:k]
    return [(int(i // 10), int(i % 10), int(cm.flat[i])) for i in flat if cm.flat[i] > 0]


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
