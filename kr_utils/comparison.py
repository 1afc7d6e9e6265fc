"""Stage: evaluation, comparisons worded from their intervals (issue: experiments a reviewer
would accept). A comparative sentence of the book should come from one of these objects, so
that "higher" is written only where the interval excludes zero and "no measurable difference"
where it contains it, with the interval beside the words and what it covers named:

- :func:`compare_seeds`: two sets of runs (seeds) of two settings, Welch's t interval of the
  difference of means (training seeds only: the test set is the same for both);
- :func:`compare_paired`: the same seeds in both settings, the paired t interval;
- :func:`mcnemar`: two students scored on the same test digits, McNemar's exact test on the
  digits where they disagree, and the interval of the difference in accuracy on that test set;
- :func:`compare_runs`: two settings' runs scored on the same test digits, an interval whose
  variance adds the training seeds' and the test digits': it covers both the seeds and the
  test set's own sampling error;
- :func:`compare_draws`: two generation settings that drew the same classes from the same noise,
  any statistic of their digits, a paired bootstrap over the draws;
- :func:`binomial_interval`: the test set's own sampling error for one accuracy (Wilson).

Differences are fractions (0.01 = one point); :meth:`Comparison.sentence` writes points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Comparison:
    """``a - b``: its estimate, 95% interval (None when it cannot be computed: a single run on a
    side), p-value, the test, and what the interval covers."""

    difference: float
    ci95: tuple[float, float] | None
    p_value: float | None
    test: str
    covers: str
    n: tuple[int, int]
    p_floor: float | None = None  # the smallest p the test can give (a bootstrap's 1 / draws)

    @property
    def verdict(self) -> str:
        """'higher', 'lower', 'no measurable difference', or 'no interval'."""
        if self.ci95 is None:
            return "no interval"
        lo, hi = self.ci95
        if lo > 0:
            return "higher"
        if hi < 0:
            return "lower"
        return "no measurable difference"

    def sentence(self, a: str, b: str, digits: int = 2, measure: str | None = None, points: bool = True) -> str:
        """The comparison in words, e.g. 'soft targets score 0.35 points higher than hard labels
        (95% interval [0.10, 0.60], over training seeds; Welch t, p = 0.01)'. ``measure`` names
        what is compared where it is not an accuracy ('the acceptance of clipping is 12.0 points
        higher than that of no clipping'); ``points=False`` for a measure that is not a fraction
        (written as it is, not in points)."""
        pts = (lambda v: f"{100 * v:.{digits}f}") if points else (lambda v: f"{v:.{digits}f}")  # noqa: E731
        unit = " points" if points else ""
        if self.ci95 is None:
            return (f"{a} and {b} differ by {pts(self.difference)}{unit} ({a} minus {b}) with no interval: "
                    f"{self.n[0]} and {self.n[1]} runs")
        lo, hi = self.ci95
        p = (f"p < {self.p_floor:.2g}" if self.p_floor is not None and self.p_value <= self.p_floor
             else f"p = {self.p_value:.2g}")
        where = f"95% interval [{pts(lo)}, {pts(hi)}], {self.covers}; {self.test}, {p}"
        if self.verdict == "no measurable difference":
            what = f" in {measure}" if measure else ""
            return (f"no measurable difference{what} between {a} and {b} ({a} minus {b}: "
                    f"{pts(self.difference)}{unit}, {where})")
        if measure:
            return f"the {measure} of {a} is {pts(abs(self.difference))}{unit} {self.verdict} than that of {b} ({where})"
        return f"{a} scores {pts(abs(self.difference))}{unit} {self.verdict} than {b} ({where})"


def compare_seeds(a, b) -> Comparison:
    """Two independent sets of runs: Welch's t interval of mean(a) - mean(b)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        raise ValueError("each side of a comparison needs at least one run")
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Comparison(diff, None, None, "Welch t", "over training seeds", (a.size, b.size))
    res = stats.ttest_ind(a, b, equal_var=False)
    if not np.isfinite(res.pvalue):  # both sides without spread: identical runs, or a difference with no noise
        ci = (diff, diff)
        return Comparison(diff, ci, 1.0 if diff == 0 else 0.0, "Welch t", "over training seeds", (a.size, b.size))
    ci = res.confidence_interval(0.95)
    return Comparison(diff, (float(ci.low), float(ci.high)), float(res.pvalue), "Welch t", "over training seeds",
                      (a.size, b.size))


def compare_paired(a, b) -> Comparison:
    """The same seeds in both settings: the paired t interval of the mean of a - b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired runs need the same seeds on both sides, got {a.size} and {b.size}")
    d = a - b
    if d.size < 2:
        return Comparison(float(d.mean()), None, None, "paired t", "over training seeds", (a.size, b.size))
    res = stats.ttest_rel(a, b)
    if not np.isfinite(res.pvalue):
        m = float(d.mean())
        return Comparison(m, (m, m), 1.0 if m == 0 else 0.0, "paired t", "over training seeds", (a.size, b.size))
    ci = res.confidence_interval(0.95)
    return Comparison(float(d.mean()), (float(ci.low), float(ci.high)), float(res.pvalue), "paired t",
                      "over training seeds", (a.size, b.size))


def mcnemar(correct_a, correct_b) -> Comparison:
    """Two classifiers on the same test digits (boolean arrays: right or wrong on each).
    McNemar's exact test: of the digits on which they disagree, how many each gets right
    (a binomial test of those counts at 1/2); the interval is the Wald interval of the
    difference of two paired proportions."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"McNemar needs both classifiers' results on the same digits, got {a.shape} and {b.shape}")
    n, only_a, only_b = a.size, int((a & ~b).sum()), int((~a & b).sum())
    diff = (only_a - only_b) / n
    p = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    var = (only_a + only_b - (only_a - only_b) ** 2 / n) / n ** 2
    half = 1.959963984540054 * math.sqrt(max(var, 0.0))
    return Comparison(diff, (diff - half, diff + half), p, "McNemar exact",
                      "over the shared test digits", (n, n))


def compare_draws(stat, a, b, labels, draws: int = 2000, seed: int = 0, what: str = "generated digits") -> Comparison:
    """Two settings that drew the same items (the same requested classes from the same noise:
    row ``i`` of ``a`` and of ``b`` is one draw under each setting), compared by ``stat(values,
    labels)`` of each: ``stat(a) - stat(b)`` with a paired bootstrap over the draws, resampled
    within each label of ``labels`` (the requested class), so the interval covers the
    sampling error of a finite draw. Percentile interval; the two-sided p is twice the smaller
    share of resampled differences on either side of zero, no smaller than 1 / ``draws``."""
    a, b, labels = np.asarray(a), np.asarray(b), np.asarray(labels)
    if len(a) != len(b) or len(a) != len(labels) or len(a) < 2:
        raise ValueError(f"paired draws need as many rows on both sides as labels, got {len(a)}, {len(b)}, {len(labels)}")
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    diff = float(stat(a, labels) - stat(b, labels))
    boot = np.empty(draws)
    for i in range(draws):
        idx = np.concatenate([rng.choice(s, len(s)) for s in strata])
        boot[i] = stat(a[idx], labels[idx]) - stat(b[idx], labels[idx])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = max(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())), 1 / draws)
    return Comparison(diff, (float(lo), float(hi)), float(p), "paired bootstrap",
                      f"over the {len(a):,d} {what}, resampled within class", (len(a), len(b)), p_floor=1 / draws)


def binomial_interval(correct: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of an accuracy of ``correct`` out of ``n`` test digits: the test
    set's own sampling error, which no number of training seeds removes."""
    if not 0 <= correct <= n or n < 1:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got {correct} of {n}")
    ci = stats.binomtest(correct, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def satterthwaite_df(parts) -> float:
    """The Welch-Satterthwaite degrees of freedom of a sum of variance estimates, each ``(v, df)``:
    (sum v)^2 / sum(v^2 / df); a part with no degrees of freedom (one seed) or no variance adds
    nothing to the denominator (inf when none is left)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    return total * total / denom if denom > 0 else np.inf


def interval_df(seed_parts, var_digits: float, n: int) -> float:
    """The degrees of freedom of an interval over seeds and test digits: the Welch-Satterthwaite
    ones of the seeds' parts (``(v, df)`` each) and the digits' ``(var_digits, n - 1)``, unless
    the interval they give would be narrower than the seeds' part alone gives at the seeds' own
    degrees of freedom; then the seeds' (an added source of error never narrows an interval)."""
    var_seeds = sum(v for v, _ in seed_parts)
    df = satterthwaite_df([*seed_parts, (var_digits, n - 1)])
    seeds_df = satterthwaite_df(seed_parts)
    if var_seeds > 0 and np.isfinite(seeds_df) and np.isfinite(df):
        if stats.t.ppf(0.975, df) ** 2 * (var_seeds + var_digits) < stats.t.ppf(0.975, seeds_df) ** 2 * var_seeds:
            return seeds_df
    return df


def _seeds_and_digits(var_seeds: float, var_digits: float, df: float, estimate: float):
    """The 95% t interval and two-sided p of ``estimate`` with variance ``var_seeds + var_digits``
    and ``df`` degrees of freedom (:func:`satterthwaite_df`)."""
    se = math.sqrt(max(var_seeds + var_digits, 0.0))
    if se == 0:
        return (estimate, estimate), 1.0 if estimate == 0 else 0.0
    q = stats.t.ppf(0.975, df) if np.isfinite(df) else stats.norm.ppf(0.975)
    p = 2 * (stats.t.sf(abs(estimate) / se, df) if np.isfinite(df) else stats.norm.sf(abs(estimate) / se))
    return (estimate - q * se, estimate + q * se), float(p)


def compare_runs(correct_a, correct_b, paired: bool = True) -> Comparison:
    """Two settings, each a set of runs scored on the same test digits (arrays, one row per
    seed: right or wrong on each digit, or any per-digit score such as a loss). The difference
    of means, with a 95%
    interval whose variance adds the two sources of error: the training seeds (the sample
    variance of the per-seed differences over S, paired by seed where ``paired``, else each
    side's over its own seeds) and the test digits (the variance over digits of the
    seed-averaged per-digit difference, over N: the test set's own sampling error, which a t
    interval over seeds on one fixed test set leaves out). The quantile is Student's t with the
    Welch-Satterthwaite degrees of freedom of those parts (S - 1 for the seeds' part, each
    side's unpaired; N - 1 for the digits'), so a few seeds widen the interval only as much as
    their share of the variance, but never to less than the seeds' part alone at its own
    degrees of freedom (:func:`interval_df`); with one seed a side it is the test digits' alone. A side of
    one run adds no seed variance, and the interval then covers the other side's seeds only
    (said in ``covers``)."""
    a, b = (np.atleast_2d(np.asarray(x).astype(np.float64)) for x in (correct_a, correct_b))
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"both settings must be scored on the same test digits, got {a.shape} and {b.shape}")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired runs need the same seeds on both sides, got {a.shape[0]} and {b.shape[0]}")
    (sa, n), sb = a.shape, b.shape[0]
    acc_a, acc_b = a.mean(1), b.mean(1)
    per_digit = a.mean(0) - b.mean(0)
    diff = float(per_digit.mean())
    var_digits = float(per_digit.var(ddof=1)) / n if n > 1 else 0.0
    if paired:
        var_seeds = float((acc_a - acc_b).var(ddof=1)) / sa if sa > 1 else 0.0
        parts = [(var_seeds, sa - 1)]
    else:
        parts = [(float(x.var(ddof=1)) / len(x) if len(x) > 1 else 0.0, len(x) - 1) for x in (acc_a, acc_b)]
        var_seeds = sum(v for v, _ in parts)
    ci, p = _seeds_and_digits(var_seeds, var_digits, interval_df(parts, var_digits, n), diff)
    one_side = not paired and min(sa, sb) == 1 and max(sa, sb) > 1
    seeds = ("" if max(sa, sb) == 1 else "the training seeds of the side with several and " if one_side
             else f"{'paired ' if paired else ''}training seeds and ")
    return Comparison(diff, ci, p, "t over seeds and digits" if seeds else "normal over digits",
                      f"over {seeds}the {n:,d} test digits", (sa, sb))


def accuracy_interval(correct) -> tuple[float, float, float]:
    """One setting's mean accuracy over its runs (boolean array, one row per seed, one column
    per test digit) and its 95% interval, whose variance adds the seeds' (the variance of the
    per-seed accuracies over S) and the test digits' (the variance over digits of the
    seed-averaged correctness, over N), with Student's t at the Welch-Satterthwaite degrees of
    freedom of the two parts (:func:`interval_df`: never narrower than the seeds' part alone at
    S - 1; the normal's for one seed and many digits): (mean, low, high). :func:`mean_interval` of any per-digit score."""
    return mean_interval(np.asarray(correct, bool))


def variance_parts(scores) -> tuple[float, float]:
    """The two parts of the variance of a mean score that :func:`mean_interval` adds (one row
    per seed, one column per test digit): the seeds' (the variance of the per-seed means over
    S; 0 for one seed) and the test digits' (the variance over digits of the seed-averaged
    score, over N)."""
    c = np.atleast_2d(np.asarray(scores).astype(np.float64))
    s, n = c.shape
    return (float(c.mean(1).var(ddof=1)) / s if s > 1 else 0.0, float(c.mean(0).var(ddof=1)) / n if n > 1 else 0.0)


def mean_interval(scores) -> tuple[float, float, float]:
    """:func:`accuracy_interval` of any per-digit score (a loss, a Brier score): one row per
    seed, one column per test digit; (mean, low, high)."""
    c = np.atleast_2d(np.asarray(scores).astype(np.float64))
    if c.size == 0:
        raise ValueError("an interval needs at least one run scored on one digit")
    s, n = c.shape
    mean = float(c.mean())
    var_seeds, var_digits = variance_parts(c)
    (lo, hi), _ = _seeds_and_digits(var_seeds, var_digits, interval_df([(var_seeds, s - 1)], var_digits, n), mean)
    return mean, float(lo), float(hi)
