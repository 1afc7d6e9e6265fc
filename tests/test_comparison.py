"""Comparisons worded from their intervals (kr_utils.comparison), on cases with known answers."""
import math

import numpy as np
import pytest
from scipy import stats

from kr_utils import comparison as cmp


def test_welch_interval_by_hand_and_its_words():
    # a - b = -1; each variance 5/3, se = sqrt(5/12 + 5/12) = 0.9129, Welch df = 6, t_0.975 = 2.4469
    c = cmp.compare_seeds([1, 2, 3, 4], [2, 3, 4, 5])
    assert math.isclose(c.difference, -1.0)
    half = 2.446911851144969 * math.sqrt(5 / 12 + 5 / 12)
    assert np.allclose(c.ci95, (-1 - half, -1 + half), rtol=1e-9)
    assert c.verdict == "no measurable difference"
    assert c.sentence("soft", "hard") == (
        "no measurable difference between soft and hard (soft minus hard: -100.00 points, "
        f"95% interval [{100 * (-1 - half):.2f}, {100 * (-1 + half):.2f}], over training seeds; Welch t, p = 0.32)")  # p = 2 P(T_6 > 1.095)
    up = cmp.compare_seeds([0.995, 0.996, 0.994], [0.990, 0.991, 0.989])
    assert up.verdict == "higher" and up.sentence("A", "B").startswith("A scores 0.50 points higher than B (95% interval")
    assert cmp.compare_seeds([0.990, 0.991, 0.989], [0.995, 0.996, 0.994]).verdict == "lower"


def test_one_run_a_side_has_no_interval_and_says_so():
    c = cmp.compare_seeds([0.99], [0.98, 0.985])
    assert c.ci95 is None and c.verdict == "no interval"
    assert c.sentence("A", "B") == "A and B differ by 0.75 points (A minus B) with no interval: 1 and 2 runs"
    assert cmp.compare_seeds([0.9, 0.9], [0.9, 0.9]).verdict == "no measurable difference"  # identical runs
    with pytest.raises(ValueError, match="at least one run"):
        cmp.compare_seeds([], [1.0])


def test_paired_interval_removes_the_shared_seed_effect():
    seed_effect = np.array([0.0, 0.02, -0.015, 0.01, -0.005])
    a, b = 0.95 + seed_effect + 0.003, 0.95 + seed_effect  # a is 0.3 points better on every seed
    assert cmp.compare_paired(a, b).verdict == "higher"
    assert cmp.compare_seeds(a, b).verdict == "no measurable difference"  # unpaired, the seeds' spread hides it
    with pytest.raises(ValueError, match="same seeds"):
        cmp.compare_paired([1, 2], [1])


def test_mcnemar_on_known_counts():
    # 100 digits: 80 both right, 10 only A right, 0 only B right, 10 both wrong
    a = np.array([1] * 80 + [1] * 10 + [0] * 10, bool)
    b = np.array([1] * 80 + [0] * 10 + [0] * 10, bool)
    c = cmp.mcnemar(a, b)
    assert math.isclose(c.difference, 0.10) and math.isclose(c.p_value, 2 * 0.5 ** 10, rel_tol=1e-12)
    half = 1.959963984540054 * math.sqrt((10 - 100 / 100) / 100 ** 2)
    assert np.allclose(c.ci95, (0.10 - half, 0.10 + half)) and c.verdict == "higher"
    same = cmp.mcnemar(np.array([1, 0, 1, 0], bool), np.array([0, 1, 1, 0], bool))  # one discordant each way
    assert same.difference == 0 and same.p_value == 1.0 and same.verdict == "no measurable difference"
    with pytest.raises(ValueError, match="same digits"):
        cmp.mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_the_test_sets_own_error_at_99_2_percent():
    lo, hi = cmp.binomial_interval(9920, 10000)
    se = math.sqrt(0.992 * 0.008 / 10000)  # 0.09 points
    assert math.isclose(hi - lo, 2 * 1.96 * se, rel_tol=0.05) and lo < 0.992 < hi
    with pytest.raises(ValueError, match="correct"):
        cmp.binomial_interval(11, 10)


def test_compare_runs_covers_the_test_digits_and_the_seeds():
    rng = np.random.default_rng(0)
    # one seed each: the interval is the test set's own error, as wide as McNemar's on those digits
    a, b = rng.random(10000) < 0.95, rng.random(10000) < 0.93
    one, mc = cmp.compare_runs(a[None], b[None]), cmp.mcnemar(a, b)
    width = lambda c: c.ci95[1] - c.ci95[0]  # noqa: E731
    assert 0.95 < width(one) / width(mc) < 1.05 and one.verdict == "higher"
    assert "over the 10,000 test digits" in one.sentence("a", "b") and "seeds" not in one.covers
    # seeds that disagree widely on the same digits: the interval must carry their spread
    seeds = np.stack([rng.random(10000) < q for q in (0.5, 0.9, 0.55, 0.95)])
    ref = np.stack([rng.random(10000) < 0.7 for _ in range(4)])
    wide = cmp.compare_runs(seeds, ref)
    assert wide.ci95[0] < 0 < wide.ci95[1] and width(wide) > 0.15, wide
    assert "paired training seeds and the 10,000 test digits" in wide.sentence("a", "b")
    # seeds that agree: the test digits' error still widens the interval past the seeds' t interval
    close_a = np.stack([rng.random(10000) < 0.95 for _ in range(5)])
    close_b = np.stack([rng.random(10000) < 0.94 for _ in range(5)])
    both, seeds_only = cmp.compare_runs(close_a, close_b), cmp.compare_paired(close_a.mean(1), close_b.mean(1))
    assert width(both) > width(seeds_only)
    same = cmp.compare_runs(seeds, seeds)
    assert same.ci95 == (0.0, 0.0) and same.verdict == "no measurable difference"
    with pytest.raises(ValueError, match="same seeds"):
        cmp.compare_runs(seeds, ref[:3])
    assert cmp.compare_runs(seeds, ref[:3], paired=False).n == (4, 3)


def test_the_interval_covers_at_five_seeds():
    """Simulated: no true difference, a seed effect as large as the digits' error; the 95%
    interval must contain 0 in about 95% of studies (a percentile bootstrap gave 85%)."""
    rng = np.random.default_rng(3)
    hits, n, trials = 0, 2000, 300
    for _ in range(trials):
        p_seed = 0.9 + rng.normal(0, 0.01, size=(2, 5))  # each setting's seeds, same distribution
        a, b = (rng.random((5, n)) < p_seed[i][:, None] for i in range(2))
        lo, hi = cmp.compare_runs(a, b).ci95
        hits += lo <= 0 <= hi
    assert 0.92 <= hits / trials <= 0.995, hits / trials


def test_accuracy_interval_covers_seeds_and_digits():
    rng = np.random.default_rng(1)
    one = rng.random((1, 10000)) < 0.9
    mean, lo, hi = cmp.accuracy_interval(one)
    wlo, whi = cmp.binomial_interval(int(one.sum()), 10000)  # one seed: the test set's error alone
    assert lo < mean < hi and abs((hi - lo) - (whi - wlo)) < 0.002
    spread = np.stack([rng.random(10000) < q for q in (0.6, 0.95, 0.7, 0.9)])
    mean, lo, hi = cmp.accuracy_interval(spread)
    assert hi - lo > 0.1  # the seeds' spread, not only the digits'


def test_compare_draws_pairs_the_draws_and_resamples_within_class():
    """Two settings on the same 400 draws: b is a with 30 of its 0s turned to 1s, so the
    difference of means is exactly 30/400 lower; pairing makes its interval (about 0.05 wide)
    half as wide as two independent samples' (about 0.14), and a bootstrap that mixed classes
    would let a class-level statistic see classes it lacks."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    a = rng.random(400) < 0.5
    b = a.copy()
    b[np.flatnonzero(~a)[:30]] = True
    c = cmp.compare_draws(lambda v, y: v.mean(), a, b, labels, draws=500)
    assert c.difference == pytest.approx(-30 / 400)
    assert c.verdict == "lower" and c.ci95[1] - c.ci95[0] < 0.07  # unpaired: about 0.14
    seen = []
    cmp.compare_draws(lambda v, y: seen.append(np.bincount(y, minlength=4)) or 0.0, a, b, labels, draws=5)
    assert all((n == 100).all() for n in seen)
    s = c.sentence("setting a", "setting b", 1, "acceptance")
    assert s.startswith("the acceptance of setting a is 7.5 points lower than that of setting b (95% interval")
    assert "paired bootstrap" in s and "resampled within class" in s
    same = cmp.compare_draws(lambda v, y: v.mean(), a, a, labels, draws=200)
    assert same.verdict == "no measurable difference"
    assert "0.00," in same.sentence("x", "y", 2, "diversity", points=False)


def test_satterthwaite_degrees_of_freedom_by_hand():
    """Two parts, 0.04 on 2 df and 0.01 on 99: (0.05)^2 / (0.04^2 / 2 + 0.01^2 / 99) = 3.12;
    a part with no degrees of freedom or no variance adds nothing; none left: infinite."""
    assert cmp.satterthwaite_df([(0.04, 2), (0.01, 99)]) == pytest.approx(0.0025 / (0.0008 + 1e-4 / 99))
    assert cmp.satterthwaite_df([(0.04, 2), (0.0, 5), (0.3, 0)]) == pytest.approx(0.34 ** 2 / 0.0008)
    assert cmp.satterthwaite_df([(0.0, 3)]) == np.inf
    # the accuracy interval at three seeds whose spread is small against the digits': nearly normal
    rng = np.random.default_rng(0)
    correct = np.stack([rng.random(10000) < 0.9 for _ in range(3)])
    m, lo, hi = cmp.accuracy_interval(correct)
    vd = correct.mean(0).var(ddof=1) / 10000
    vs = correct.mean(1).var(ddof=1) / 3
    from scipy import stats
    df = (vs + vd) ** 2 / (vs ** 2 / 2 + vd ** 2 / 9999)
    assert (hi - lo) / 2 == pytest.approx(stats.t.ppf(0.975, df) * (vs + vd) ** 0.5)
    assert (hi - lo) / 2 < 4.3 * (vs + vd) ** 0.5  # below t's quantile at 2 df, the old rule


def test_variance_parts_are_the_two_terms_of_the_interval():
    rng = np.random.default_rng(0)
    c = rng.random((3, 500)) < np.array([[0.9], [0.95], [0.99]])
    v_seeds, v_digits = cmp.variance_parts(c)
    assert v_seeds == pytest.approx(c.mean(1).var(ddof=1) / 3)
    assert v_digits == pytest.approx(c.mean(0).var(ddof=1) / 500)
    assert cmp.variance_parts(c[:1])[0] == 0.0  # one seed: no seeds' part
    mean, lo, hi = cmp.accuracy_interval(c)
    assert (hi - lo) / 2 > 1.96 * np.sqrt(v_seeds + v_digits)  # Student's t at few degrees of freedom is wider


def test_an_interval_over_seeds_and_digits_is_never_narrower_than_the_seeds_alone():
    """Five seeds whose spread dominates but does not swamp the digits' error: Satterthwaite's
    degrees of freedom rise above S - 1, and the t quantile falls faster than the added variance
    widens; the interval then uses S - 1 (interval_df), so it holds the seeds-only t interval."""
    rng = np.random.default_rng(0)
    base = rng.random(10000)
    correct = np.stack([base < q for q in (0.60, 0.64, 0.66, 0.70, 0.74)])  # shared digits: small digit variance
    vs, vd = cmp.variance_parts(correct)
    assert cmp.satterthwaite_df([(vs, 4), (vd, 9999)]) > 4  # the case the rule is for
    m, lo, hi = cmp.accuracy_interval(correct)
    seeds_half = stats.t.ppf(0.975, 4) * vs ** 0.5
    assert hi - m >= seeds_half - 1e-12
    assert cmp.interval_df([(vs, 4)], vd, 10000) == 4
    assert cmp.interval_df([(vs, 4)], 100 * vs, 10000) > 4  # digits dominate: Satterthwaite's stands
    c = cmp.compare_runs(correct, correct[::-1].copy())
    acc = correct.mean(1) - correct[::-1].mean(1)
    assert c.ci95[1] - c.difference >= stats.t.ppf(0.975, 4) * (acc.var(ddof=1) / 5) ** 0.5 - 1e-12
