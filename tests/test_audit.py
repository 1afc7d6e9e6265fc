"""kr_utils.audit: each measure of chapter 9 on a case whose answer is known."""
import math

import numpy as np
import pytest
import torch

from kr_utils import audit


def test_fidelity_identical_and_known_kl():
    t = torch.randn(50, 10)
    same = audit.fidelity(t, t)
    assert same["agreement"] == 1.0 and abs(same["kl"]) < 1e-6
    # two classes: teacher p = (0.8, 0.2), student q = (0.5, 0.5): KL = 0.8 ln 1.6 + 0.2 ln 0.4
    teacher = torch.log(torch.tensor([[0.8, 0.2]]))
    student = torch.zeros(1, 2)
    f = audit.fidelity(student, teacher)
    assert f["kl"] == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4), abs=1e-6)
    # a student that always answers the next class never agrees
    assert audit.fidelity(t.roll(1, dims=1), t)["agreement"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        audit.fidelity(t[:, :5], t)


def test_nearest_matches_brute_force_and_scales_uint8():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(37, 6, generator=g), torch.randn(101, 6, generator=g)
    d, i = audit.nearest(q, r, k=4, chunk=10)
    full = torch.cdist(q.double(), r.double())
    ref_d, ref_i = full.topk(4, dim=1, largest=False)
    assert torch.equal(i, ref_i)
    assert torch.allclose(d.double(), ref_d, atol=1e-5)
    # uint8 images are compared in [0, 1]: one pixel differing by 255 is at distance 1
    a = np.zeros((1, 28, 28), np.uint8)
    b = np.zeros((3, 28, 28), np.uint8)
    b[0, 3, 3] = 255
    b[1] = 255
    b[2, 0, :4] = 255
    d, i = audit.nearest(a, b, k=3)
    assert d[0].tolist() == pytest.approx([1.0, 2.0, 28.0])
    assert i[0].tolist() == [0, 2, 1]


def test_nearest_orders_near_ties_exactly():
    # large values and tiny gaps: float32 products cannot order these, the exact recomputation can
    q = torch.full((1, 4), 1000.0, dtype=torch.float64)
    gaps = torch.tensor([0.3, 0.1, 0.2, 0.05], dtype=torch.float64)
    r = q.repeat(4, 1)
    r[:, 0] += gaps
    d, i = audit.nearest(q, r, k=4)
    assert i[0].tolist() == [3, 1, 2, 0]
    assert d[0].tolist() == pytest.approx([0.05, 0.1, 0.2, 0.3], rel=1e-4)


def test_nearest_exclude_self_and_exact_copies():
    g = torch.Generator().manual_seed(1)
    r = torch.randn(30, 5, generator=g)
    d, i = audit.nearest(r, r, k=1, exclude_self=True)
    assert (i[:, 0] != torch.arange(30)).all() and (d > 0).all()
    d, i = audit.nearest(r[:7], r, k=2)  # the rows themselves are in the reference: distance exactly 0
    assert (d[:, 0] == 0).all() and torch.equal(i[:, 0], torch.arange(7))
    with pytest.raises(ValueError, match="neighbours"):
        audit.nearest(r, r[:2], k=3)


def test_memorisation_counts_on_constructed_distances():
    # rows: an exact copy; a digit ten times closer to one training digit than to the next;
    # a digit equidistant from its two nearest
    dist = torch.tensor([[0.0, 2.0], [0.1, 1.0], [1.0, 1.0]])
    m = audit.memorisation(dist)
    assert m["exact"] == 1 and m["ratio_flagged"] == 2 and m["n"] == 3
    assert m["ratio"].tolist() == pytest.approx([0.0, 0.1, 1.0])
    assert "calibrated" not in m  # fewer than CALIBRATED_N neighbours
    with pytest.raises(ValueError, match="k >= 2"):
        audit.memorisation(dist[:, :1])


def test_calibrated_l2_is_nearest_over_half_the_neighbourhood_mean():
    n = audit.CALIBRATED_N
    row = torch.full((1, n), 2.0)
    row[0, 0] = 0.5
    mean = (0.5 + 2.0 * (n - 1)) / n
    value = 0.5 / (audit.CALIBRATED_ALPHA * mean)  # 0.5 / (0.5 * 1.97) = 0.508
    m = audit.memorisation(row, calibrated_below=0.6)
    assert m["calibrated"][0].item() == pytest.approx(value, rel=1e-5)
    assert m["calibrated_flagged"] == 1
    assert audit.memorisation(row, calibrated_below=0.5)["calibrated_flagged"] == 0


def test_reference_threshold_is_a_quantile():
    v = torch.arange(1, 101).double()
    assert audit.reference_threshold(v, 0.01) == pytest.approx(1.99)
    assert audit.reference_threshold(v, 0.5) == pytest.approx(50.5)


def test_gaussian_frechet_closed_form():
    # 1-D: N(0, 1) against N(1, 4): (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    assert audit.gaussian_frechet([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0)
    # commuting diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 plus the squared mean gap
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    expected = 3.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert audit.gaussian_frechet([1, 1, 1], a, [0, 0, 0], b) == pytest.approx(expected)
    assert audit.gaussian_frechet([0, 0], np.eye(2), [0, 0], np.eye(2)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_on_samples_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, 2, generator=g)
    b = torch.randn(200_000, 2, generator=g) * torch.tensor([2.0, 1.0]) + torch.tensor([1.0, 0.0])
    # N(0, I) against N((1, 0), diag(4, 1)): 1 + (1 - 2)^2 = 2
    assert audit.frechet_distance(a, b) == pytest.approx(2.0, abs=0.03)


def test_frechet_distance_agrees_with_torchmetrics():
    fid_mod = pytest.importorskip("torchmetrics.image.fid")

    class Identity(torch.nn.Module):
        num_features = 4

        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(3)
    a = torch.randn(500, 4, generator=g)
    b = torch.randn(400, 4, generator=g) @ torch.randn(4, 4, generator=g) + 0.5
    metric = fid_mod.FrechetInceptionDistance(feature=Identity(), normalize=True)
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert audit.frechet_distance(a, b) == pytest.approx(float(metric.compute()), rel=1e-4)


def test_precision_recall_radii_on_a_line():
    # reals at 0, 1, ..., 9: with k = 1 each real's ball has radius 1. Fakes at 0.5 and 1.4 lie
    # inside (precision 1); their balls (radius 0.9, the distance between them) reach the reals
    # 0, 1 and 2 only (recall 3/10).
    real = torch.arange(10.0)[:, None]
    fake = torch.tensor([[0.5], [1.4]])
    pr = audit.precision_recall(real, fake, k=1)
    assert pr["precision"] == 1.0 and pr["recall"] == pytest.approx(0.3)
    assert audit.precision_recall(real, torch.tensor([[0.5], [30.0]]), k=1)["precision"] == 0.5


def test_precision_recall_known_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 3, generator=g)
    same = audit.precision_recall(real, real.clone(), k=3)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = audit.precision_recall(real, real + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # half the fakes are real digits, half far away: precision 1/2; the real half covers every
    # real row (each is a fake's centre, radius >= 0), so recall is 1
    half = torch.cat([real[:150], real[:150] + 100.0])
    mixed = audit.precision_recall(real, half, k=3)
    assert mixed["precision"] == pytest.approx(0.5)
    assert mixed["recall"] >= 0.5
    # fakes collapsed onto a few real rows (mode collapse): precision stays high, recall falls
    collapsed = real[:5].repeat(60, 1) + 1e-4 * torch.randn(300, 3, generator=g)
    c = audit.precision_recall(real, collapsed, k=3)
    assert c["precision"] == 1.0 and c["recall"] < 0.2


def test_calibration_known_ece_and_bins():
    # every prediction at confidence 0.75, half of them right: ECE = |0.5 - 0.75| = 0.25
    p = 0.75
    logit = math.log(p / ((1 - p) / 9))
    logits = torch.zeros(100, 10)
    logits[:, 0] = logit
    labels = torch.tensor([0] * 50 + [1] * 50)
    c = audit.calibration(logits, labels, n_bins=10)
    assert c["ece"] == pytest.approx(0.25, abs=1e-5)
    b = int(np.nanargmax(c["count"]))
    assert c["edges"][b] <= 0.75 < c["edges"][b + 1]  # the bin [0.7, 0.8)
    assert c["count"][b] == 100 and c["confidence"][b] == pytest.approx(0.75, abs=1e-5)
    assert c["accuracy"][b] == pytest.approx(0.5)
    assert sum(c["count"]) == 100


def test_calibration_bins_reproduce_torchmetrics_ece():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2000, 10, generator=g) * 3
    labels = torch.randint(0, 10, (2000,), generator=g)
    c = audit.calibration(logits, labels, n_bins=15)
    count = np.array(c["count"], float)
    gap = np.abs(np.nan_to_num(np.array(c["accuracy"]) - np.array(c["confidence"])))
    assert (count * gap).sum() / count.sum() == pytest.approx(c["ece"], abs=1e-5)
