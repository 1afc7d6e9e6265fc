"""Stage: evaluate. What a copy is worth beyond its accuracy (chapter 9), as functions of
tensors with a known answer each (tests/test_audit.py):

- fidelity: how often the student agrees with the teacher, and the KL divergence between
  their predictive distributions (:func:`fidelity`);
- memorisation: each generated digit's nearest training digits (:func:`nearest`), exact copies,
  the ratio test of Gu et al. (2023) and the calibrated ℓ2 of Carlini et al. (2023)
  (:func:`memorisation`);
- distribution: the Fréchet distance between Gaussians fitted to two sets of features
  (:func:`frechet_distance`) and the k-NN precision and recall of Kynkäänniemi et al. (2019)
  (:func:`precision_recall`);
- calibration: expected calibration error and a reliability diagram's bins (:func:`calibration`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg
from torchmetrics.functional.classification import multiclass_calibration_error

RATIO_THRESHOLD = 1 / 3  # Gu et al.: nearest / second-nearest below this is a memorised sample
CALIBRATED_N, CALIBRATED_ALPHA = 50, 0.5  # Carlini et al.'s neighbourhood size and scale


def fidelity(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> dict:
    """Top-1 ``agreement`` of the student with the teacher (the fraction of inputs whose argmax
    they share) and the mean ``kl`` divergence KL(p_teacher || p_student) in nats, over the same
    inputs."""
    s, t = torch.as_tensor(student_logits).float(), torch.as_tensor(teacher_logits).float()
    if s.shape != t.shape:
        raise ValueError(f"student logits {tuple(s.shape)} and teacher logits {tuple(t.shape)} differ in shape")
    log_s, log_t = s.log_softmax(1), t.log_softmax(1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1)
    return {"agreement": float((s.argmax(1) == t.argmax(1)).float().mean()), "kl": float(kl.mean()),
            "n": int(len(s))}


def _flat(x) -> torch.Tensor:
    """Images or features as float64 rows: uint8 images are scaled to [0, 1] first."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    return x.reshape(len(x), -1).double() / scale


def nearest(query, reference, k: int = 2, exclude_self: bool = False, chunk: int = 2048, device=None):
    """The ``k`` nearest rows of ``reference`` to each row of ``query`` in Euclidean distance
    (images as uint8 are compared in [0, 1] pixels), exact, in chunks. Returns ``(distances,
    indices)``, each ``(len(query), k)`` and sorted. With ``exclude_self`` the query is the
    reference itself and each row's own entry is skipped.

    Candidates are found with float32 matrix products (on ``device``: a GPU where there is one)
    and their distances then recomputed in float64 from the differences themselves, so an exact
    copy is at distance 0."""
    q, r = _flat(query), _flat(reference)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query rows have {q.shape[1]} values, reference rows {r.shape[1]}")
    if k + exclude_self > len(r):
        raise ValueError(f"k={k} neighbours asked of a reference of {len(r)} rows")
    r32 = r.float().to(device or "cpu")
    r_sq = (r32 * r32).sum(1)
    dists, idxs = [], []
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        b32 = block.float().to(r32.device)
        d2 = (b32 * b32).sum(1, keepdim=True) + r_sq[None] - 2 * b32 @ r32.T
        if exclude_self:
            rows = torch.arange(len(block), device=d2.device)
            d2[rows, rows + start] = float("inf")
        cand = d2.topk(k, dim=1, largest=False).indices.cpu()
        exact = torch.cat([((r[c] - b[:, None]) ** 2).sum(-1).sqrt()
                           for b, c in zip(block.split(256), cand.split(256))])
        d, order = exact.sort(1)
        dists.append(d)
        idxs.append(cand.gather(1, order))
    return torch.cat(dists).float(), torch.cat(idxs)


def memorisation(dist: torch.Tensor, exact_tol: float = 1e-6, calibrated_below: float | None = None) -> dict:
    """Memorisation statistics from each sample's sorted distances to its nearest training digits
    (:func:`nearest` with ``k >= 2``; with ``k >= CALIBRATED_N`` the calibrated ℓ2 too):

    - ``exact``: samples at distance <= ``exact_tol`` from a training digit (a copy);
    - ``ratio``: nearest / second-nearest distance, and ``ratio_flagged``, the samples below
      :data:`RATIO_THRESHOLD` (Gu et al.: much closer to one training digit than to any other);
    - ``calibrated``: nearest distance / (alpha x mean distance to the ``CALIBRATED_N`` nearest),
      Carlini et al.'s ℓ2 scaled by how crowded the sample's neighbourhood is, and
      ``calibrated_flagged``, those below ``calibrated_below`` (a threshold set on a reference set
      of unseen real digits: :func:`reference_threshold`).
    """
    dist = torch.as_tensor(dist).double()
    if dist.ndim != 2 or dist.shape[1] < 2:
        raise ValueError("memorisation needs each sample's two nearest distances at least (k >= 2)")
    ratio = dist[:, 0] / dist[:, 1].clamp(min=1e-12)
    out = {"n": int(len(dist)), "nearest": dist[:, 0].float(), "ratio": ratio.float(),
           "exact": int((dist[:, 0] <= exact_tol).sum()), "ratio_flagged": int((ratio < RATIO_THRESHOLD).sum())}
    if dist.shape[1] >= CALIBRATED_N:
        calibrated = dist[:, 0] / (CALIBRATED_ALPHA * dist[:, :CALIBRATED_N].mean(1)).clamp(min=1e-12)
        out["calibrated"] = calibrated.float()
        if calibrated_below is not None:
            out["calibrated_flagged"] = int((calibrated < calibrated_below).sum())
    return out


def reference_threshold(values: torch.Tensor, quantile: float = 0.01) -> float:
    """The ``quantile`` of a statistic over a reference set (real test digits, none of which is
    a copy of a training digit): the flag threshold that marks that fraction of unseen real digits."""
    return float(torch.quantile(torch.as_tensor(values).double(), quantile))


def gaussian_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if caught or not np.isfinite(covmean).all():  # a singular product: nudge both as Heusel et al.'s code does
        eps = np.eye(len(sigma1)) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows), the
    FID formula of Heusel et al. in whatever feature space the rows come from. It is biased
    upwards on small samples: compare sets of equal size only."""
    a, b = _flat(a).numpy(), _flat(b).numpy()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance needs two rows per set at least, got {len(a)} and {len(b)}")
    return gaussian_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def precision_recall(real, fake, k: int = 3) -> dict:
    """k-NN precision and recall (Kynkäänniemi et al., 2019) of ``fake`` against ``real``
    feature rows: each real row's ball reaches its k-th nearest other real row; ``precision`` is
    the fraction of fake rows inside some real ball (fakes look real), ``recall`` the fraction of
    real rows inside some fake ball, built the same way among fakes (the reals are covered)."""
    real, fake = _flat(real), _flat(fake)

    def inside(points, centres, radii):
        hit = torch.zeros(len(points), dtype=torch.bool)
        for start in range(0, len(points), 2048):
            d = torch.cdist(points[start:start + 2048], centres)
            hit[start:start + 2048] = (d <= radii[None]).any(1)
        return hit.float().mean().item()

    r_real = nearest(real, real, k, exclude_self=True)[0][:, -1].double()
    r_fake = nearest(fake, fake, k, exclude_self=True)[0][:, -1].double()
    return {"precision": inside(fake, real, r_real), "recall": inside(real, fake, r_fake), "k": k}


def proper_scores(logits: torch.Tensor, labels) -> dict:
    """Two proper scoring rules of a classifier's probabilities, per digit (lower is better):
    the negative log-likelihood of the true class, -log p_y, and the Brier score,
    sum_k (p_k - [k = y])^2. Their means over digits are the NLL and the Brier score; unlike
    the ECE, each is a mean of per-digit terms, so its sampling error over test digits is a
    variance over those terms. ``{"nll": array, "brier": array}``."""
    logits, labels = torch.as_tensor(logits).float(), torch.as_tensor(labels).long()
    logp = logits.log_softmax(1)
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).float()
    return {"nll": (-logp.gather(1, labels[:, None])[:, 0]).numpy(),
            "brier": ((logp.exp() - onehot) ** 2).sum(1).numpy()}


def calibration(logits: torch.Tensor, labels, n_bins: int = 15) -> dict:
    """Expected calibration error (torchmetrics, ℓ1, ``n_bins`` equal-width confidence bins)
    and the bins of a reliability diagram: per bin, the mean confidence, the accuracy and the
    number of predictions (empty bins: NaN)."""
    logits, labels = torch.as_tensor(logits).float(), torch.as_tensor(labels).long()
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    ece = multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    edges = torch.linspace(0, 1, n_bins + 1)
    # bin b holds [edges[b], edges[b+1]) as in torchmetrics; a confidence of exactly 1 joins the last bin
    which = (torch.bucketize(conf, edges, right=True) - 1).clamp(max=n_bins - 1)
    count = torch.bincount(which, minlength=n_bins).double()
    correct = (pred == labels).double()
    mean = lambda v: (torch.bincount(which, weights=v, minlength=n_bins) / count).tolist()  # noqa: E731
    return {"ece": float(ece), "edges": edges.tolist(), "confidence": mean(conf.double()),
            "accuracy": mean(correct), "count": count.long().tolist()}
