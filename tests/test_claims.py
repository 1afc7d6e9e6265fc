"""kr_utils.claims: chapter 9's studies on small constructed pools and sets."""
import numpy as np
import pytest
import torch

from kr_utils import claims, thesis
from kr_utils.config import get_config


def make_pool(per_class=20, seed=0):
    """A pool whose teacher confidence is known: digit i of each class has confidence rising
    from about 0.1 to almost 1 for its requested class."""
    g = torch.Generator().manual_seed(seed)
    requested = torch.arange(10).repeat_interleave(per_class)
    strength = torch.linspace(0, 12, per_class).repeat(10)
    logits = torch.zeros(10 * per_class, 10)
    logits[torch.arange(len(requested)), requested] = strength
    images = torch.randint(0, 256, (10 * per_class, 28, 28), generator=g, dtype=torch.uint8)
    return {"images": images, "requested": requested, "logits": logits}


def test_acceptance_counts_the_confident_share():
    pool = make_pool()
    conf = pool["logits"].softmax(1).max(1).values
    acc = claims.acceptance(pool, [0.0, 0.5, 0.9])
    assert acc[0.0] == 1.0
    assert acc[0.9] == pytest.approx(float((conf >= 0.9).float().mean()))
    assert acc[0.5] > acc[0.9] > 0


def test_filtered_set_is_balanced_confident_and_seeded():
    pool = make_pool(per_class=20)
    s = claims.filtered_set(pool, 0.9, per_class=5, seed=1)
    assert np.bincount(s["labels"], minlength=10).tolist() == [5] * 10
    conf = torch.as_tensor(s["logits"]).softmax(1).max(1).values
    assert (conf >= 0.9).all()
    again = claims.filtered_set(pool, 0.9, per_class=5, seed=1)
    other = claims.filtered_set(pool, 0.9, per_class=5, seed=2)
    assert np.array_equal(s["images"], again["images"]) and not np.array_equal(s["images"], other["images"])
    # more digits per class than the filter keeps: no set
    kept_per_class = int((pool["logits"][:20].softmax(1).max(1).values >= 0.9).sum())
    assert claims.filtered_set(pool, 0.9, per_class=kept_per_class + 1, seed=0) is None


def test_filtered_set_requested_labels():
    pool = make_pool(per_class=10)
    pool["logits"] = pool["logits"].roll(1, dims=1)  # the teacher always answers the next class
    teacher = claims.filtered_set(pool, 0.0, per_class=3, seed=0)
    requested = claims.filtered_set(pool, 0.0, per_class=3, seed=0, label_mode="requested")
    assert np.array_equal(requested["labels"], np.repeat(np.arange(10), 3))
    assert not np.array_equal(teacher["labels"] % 10, requested["labels"])


def test_set_key_names_the_content():
    pool = make_pool()
    s = claims.filtered_set(pool, 0.5, per_class=3, seed=0)
    t = {k: v.copy() for k, v in s.items()}
    assert claims.set_key(s) == claims.set_key(t)
    t["images"][0, 0, 0] ^= 1
    assert claims.set_key(s) != claims.set_key(t)
    t = {k: v.copy() for k, v in s.items()}
    t["logits"][0, 0] += 1
    assert claims.set_key(s) != claims.set_key(t)


def test_counts_by_size_grow_with_the_subset():
    g = torch.Generator().manual_seed(0)
    n = 400
    pixel = torch.rand(n, 2, generator=g).sort(1).values + 0.1
    pixel[:40, 0] = 0.0  # forty exact copies
    nn = {"pixel": pixel, "feature": pixel.clone()}
    counts = claims.counts_by_size(nn, {"pixel": 0.5, "feature": 0.5}, [100, 400], seed=0)
    assert counts[400]["pixel_exact"] == 40
    assert 0 < counts[100]["pixel_exact"] < 40
    assert counts[400]["pixel_ratio_flagged"] >= counts[100]["pixel_ratio_flagged"]


def test_distribution_floor_of_identical_sets_and_a_shifted_set():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 4, generator=g)
    labels = torch.arange(10).repeat(200)
    same = claims.distribution(feats, labels, feats.clone(), labels, size=2000, k=3, seed=0)
    assert same["frechet"] == pytest.approx(0.0, abs=1e-6) and same["precision"] == 1.0 and same["recall"] == 1.0
    assert set(same["per_class"]) == set(range(10))
    shifted = claims.distribution(feats, labels, feats + 3.0, labels, size=2000, k=3, seed=0)
    assert shifted["frechet"] == pytest.approx(4 * 9.0, rel=0.05)  # |mean gap|^2 = 4 x 3^2
    assert shifted["precision"] < 0.2


def test_thesis_sampler_is_the_thesis_recipe():
    cfg = get_config("cpu")
    t = claims.thesis_sampler(cfg)
    assert (t.sampler, t.guidance_w, t.x_T_scale, t.noise_scale, t.clip_x0) == (
        "ancestral", thesis.GENERATION["guidance_w"], 0.5, 0.5, True)
    assert t.num_steps == cfg.sampler.knob_steps
    assert get_config("gpu").sampler.knob_steps == 1000  # the thesis' own chain at the gpu profile


def summary(values):
    from kr_utils.evaluate import summarize_seeds
    return summarize_seeds(values)


def _correct(*per_seed, n=1000):
    """One row per seed, right on the first ``k`` of ``n`` test digits for each k in per_seed."""
    return np.stack([np.arange(n) < k for k in per_seed])


def test_threshold_gain_against_no_filter_over_seeds_and_test_digits():
    """The gain at 0.9 against no filter, paired by seed on the same test digits: 2 points, whose
    interval adds the seeds' spread and the digits'; with 1,000 digits a 2-point gain of three
    seeds that agree is measurable, and a gain whose sign the seeds disagree on is not."""
    sweep = {0.0: {"acceptance": 1.0, "accuracy": summary([0.90, 0.91, 0.92]), "correct": _correct(900, 910, 920)},
             0.5: {"acceptance": 0.9, "accuracy": summary([0.95, 0.96, 0.97]), "correct": _correct(950, 960, 970)},
             0.9: {"acceptance": 0.8, "accuracy": summary([0.92, 0.93, 0.94]), "correct": _correct(920, 930, 940)},
             0.99: {"acceptance": 0.1, "accuracy": None, "correct": None}}
    g = claims.threshold_gain(sweep, 0.9)
    assert g["gain"] == pytest.approx(2.0) and g["lowest"] == 0.0 and g["best"] == 0.5
    assert g["comparison"].verdict == "higher" and "paired training seeds and the 1,000 test digits" in g["comparison"].covers
    # seeds that disagree on the sign: +2, -2 and +1 digits of 1,000
    close = {**sweep, 0.9: {"acceptance": 0.8, "accuracy": summary([0.902, 0.908, 0.921]), "correct": _correct(902, 908, 921)}}
    assert claims.threshold_gain(close, 0.9)["comparison"].verdict == "no measurable difference"
    assert claims.threshold_gain(sweep, 0.99)["gain"] is None  # no student at 0.99


def test_the_sweep_trains_at_the_main_students_budget():
    cfg = get_config("cpu")
    n = claims.sweep_epochs(cfg)
    assert cfg.evaluation.sweep_epochs is None
    main_updates = cfg.student.epochs * cfg.synth.per_class
    assert abs(n * cfg.evaluation.sweep_per_class - main_updates) <= cfg.evaluation.sweep_per_class


def test_predictiveness_ranks():
    dists = {s: {"frechet": 10.0 / s, "precision": s / 10, "recall": 0.5} for s in (1, 2, 3, 4)}
    students = {("a", s): {"accuracy": 0.5 + s / 10} for s in (1, 2, 3, 4)}
    students.update({("b", 1): {"accuracy": 0.9}})  # one student only: no correlation
    p = claims.predictiveness(dists, students, ["a", "b"])
    assert p["rho"].loc["frechet", "a"] == pytest.approx(-1.0)
    assert p["rho"].loc["precision", "a"] == pytest.approx(1.0)
    assert np.isnan(p["rho"].loc["frechet", "b"])
    assert list(p["table"].index) == [1, 2, 3, 4]


def test_calibration_compares_proper_scores_over_seeds_and_digits():
    """A student sure and right on every digit has NLL and Brier near 0; one with flat
    probabilities has NLL log 10 and Brier 0.9 on every digit: the comparison finds the first
    lower, with a zero-width interval (no spread over seeds or digits)."""
    import math

    from kr_utils import claims

    y = torch.arange(10)
    sure = torch.nn.functional.one_hot(y, 10).float() * 50
    flat = torch.zeros(10, 10)
    runs = {("resnet_preact", "hard"): {0: {"test_logits": flat}, 1: {"test_logits": flat}},
            ("resnet_preact", "soft_t4"): {0: {"test_logits": sure}, 1: {"test_logits": sure}}}
    cal = claims.calibration_table(sure, runs, y, n_bins=5)
    assert cal["resnet_preact/hard"]["nll"]["mean"] == pytest.approx(math.log(10))
    assert cal["resnet_preact/hard"]["brier"]["mean"] == pytest.approx(0.9)
    assert cal["teacher"]["nll"]["mean"] == pytest.approx(0, abs=1e-6)
    c = claims.calibration_comparisons(cal, "resnet_preact", ["hard", "soft_t4"])
    assert set(c) == {"soft_t4"}
    assert c["soft_t4"]["nll"].difference == pytest.approx(-math.log(10))
    assert c["soft_t4"]["nll"].verdict == "lower" and c["soft_t4"]["brier"].verdict == "lower"
    assert "paired training seeds and the 10 test digits" in c["soft_t4"]["nll"].covers


def test_copy_excess_tests_the_flag_rates_against_unseen_digits():
    """200 synthetic digits with 4 flagged against unseen digits' 2%: no excess (p about 0.57);
    with 12 flagged, an excess; any exact copy counts."""
    test = {"n": 10000, "pixel_ratio_flagged": 0.02, "pixel_exact": 0.0, "pixel_calibrated_flagged": 0.01}
    syn = {"n": 200, "pixel_ratio_flagged": 4 / 200, "pixel_exact": 0.0, "pixel_calibrated_flagged": 2 / 200}
    assert not claims.copy_excess(syn, test)["more"]
    assert claims.copy_excess({**syn, "pixel_ratio_flagged": 12 / 200}, test)["more"]
    assert claims.copy_excess({**syn, "pixel_calibrated_flagged": 10 / 200}, test)["more"]
    assert claims.copy_excess({**syn, "pixel_exact": 1 / 200}, test)["more"]


def test_untrained_features_are_a_function_of_the_seed_alone():
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    torch.manual_seed(123)
    a = claims.untrained_features("resnet_preact", 5, {"x": x}, "cpu")["x"]
    torch.manual_seed(456)  # the global generator does not matter
    b = claims.untrained_features("resnet_preact", 5, {"x": x}, "cpu")["x"]
    c = claims.untrained_features("resnet_preact", 6, {"x": x}, "cpu")["x"]
    assert a.shape == (6, 64) and torch.equal(a, b) and not torch.allclose(a, c)
    assert a.std(0).mean() > 0  # the images are told apart
    torch.testing.assert_close(a.mean(0), torch.zeros(64), atol=1e-4, rtol=0)  # standardised on the first entry
    two = claims.untrained_features("resnet_preact", 5, {"ref": x, "other": x[:3]}, "cpu")
    torch.testing.assert_close(two["other"], two["ref"][:3])  # the same transform for every entry
