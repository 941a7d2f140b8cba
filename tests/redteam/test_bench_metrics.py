"""redteam.bench.metrics: hand-computed values, scikit-learn agreement, the Wilson interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from audit.errors import InvalidParameterError, ShapeMismatchError
from redteam.bench.metrics import (
    DetectionMetrics, auroc, average_precision, detection_metrics, review_cost, tpr_at_fpr, wilson,
)

# 3 poisoned (P) and 5 clean (C); ranked high to low: P .9, C .8, P .7, C .6, C .5, P .4, C .3, C .2
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
TRUTH = np.array([True, False, True, False, False, True, False, False])


def test_hand_computed_values():
    # pairs (P, C) with P above C: .9 beats 5, .7 beats 4, .4 beats 2 -> 11 of 15
    assert auroc(SCORES, TRUTH) == pytest.approx(11 / 15)
    # precision at each poisoned hit: 1/1, 2/3, 3/6; each recall step is 1/3
    assert average_precision(SCORES, TRUTH) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    # FPR 0 allows the top image only; FPR 1/5 allows one clean image above: .9, .8, .7 -> 2/3
    assert tpr_at_fpr(SCORES, TRUTH, 0.0) == pytest.approx(1 / 3)
    assert tpr_at_fpr(SCORES, TRUTH, 0.2) == pytest.approx(2 / 3)
    assert tpr_at_fpr(SCORES, TRUTH, 0.59) == pytest.approx(2 / 3)  # .4 has 3 clean images above it
    assert tpr_at_fpr(SCORES, TRUTH, 0.6) == pytest.approx(1.0)
    assert review_cost(SCORES, TRUTH) == 6  # the lowest poisoned image is 6th


def test_ties_count_against_the_detector():
    s = np.array([1.0, 1.0, 1.0, 0.0])
    y = np.array([True, False, False, False])
    assert auroc(s, y) == pytest.approx((2 * 0.5 + 1) / 3)  # ties half
    assert review_cost(s, y) == 3  # the reviewer may see both tied clean images first
    assert tpr_at_fpr(s, y, 0.5) == 0.0  # tied images are flagged together: FPR 2/3 > 0.5
    assert tpr_at_fpr(s, y, 2 / 3) == 1.0
    # a detector with no opinion (all zero / NaN on poisoned images) costs the whole pool
    assert review_cost(np.array([0.0, 0.0, 3.0]), np.array([True, False, False])) == 3
    assert review_cost(np.array([np.nan, 1.0, 3.0]), np.array([True, False, False])) == 3


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.1
    s = np.round(rng.normal(size=300) + 1.5 * y, 1)  # rounding makes ties
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))


def test_tpr_at_fpr_agrees_with_sklearn_roc_curve():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(7)
    y = rng.random(2000) < 0.05
    s = rng.normal(size=2000) + 2 * y
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for f in (0.001, 0.01, 0.1):
        assert tpr_at_fpr(s, y, f) == pytest.approx(tpr[fpr <= f].max())


def test_undefined_without_poison_or_without_clean():
    s = np.array([0.3, 0.2, 0.1])
    none = np.zeros(3, bool)
    assert auroc(s, none) is None and average_precision(s, none) is None
    assert tpr_at_fpr(s, none, 0.01) is None and review_cost(s, none) is None
    assert auroc(s, ~none) is None


def test_detection_metrics_counts_flags_and_round_trips():
    flagged = np.array([True, True, False, False, False, False, False, False])
    m = detection_metrics(SCORES, TRUTH, flagged)
    assert (m.n_poison, m.n_clean, m.flagged_poison, m.flagged_clean) == (3, 5, 1, 1)
    assert m.flag_fpr == pytest.approx(0.2)
    assert m.tpr_at_fpr == {"0.001": pytest.approx(1 / 3), "0.01": pytest.approx(1 / 3)}
    assert sorted(m.poison_scores) == [0.4, 0.7, 0.9] and len(m.clean_quantiles) == 101
    assert DetectionMetrics.from_json(m.to_json()) == m
    control = detection_metrics(SCORES, np.zeros(8, bool), flagged)
    assert control.auroc is None and control.flagged_clean == 2 and control.flag_fpr == pytest.approx(0.25)


def test_bad_input_is_refused():
    with pytest.raises(ShapeMismatchError):
        auroc(SCORES, TRUTH[:-1])
    with pytest.raises(InvalidParameterError, match="bool array"):
        auroc(SCORES, TRUTH.astype(int))
    with pytest.raises(InvalidParameterError, match="'fpr' parameter"):
        tpr_at_fpr(SCORES, TRUTH, 2.0)


def test_wilson_interval():
    lo, hi = wilson(7, 8)  # the paper's headline 7/8
    assert (lo, hi) == (pytest.approx(0.52911, abs=1e-5), pytest.approx(0.97758, abs=1e-5))
    z2 = 1.959963984540054**2
    assert wilson(0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))  # closed form at k = 0
    assert wilson(10, 10)[0] == pytest.approx(10 / (10 + z2)) and wilson(10, 10)[1] <= 1.0
    lo, hi = wilson(4, 8)
    assert lo + hi == pytest.approx(1.0) and lo < 0.5 < hi
    assert wilson(0, 0) is None
    with pytest.raises(InvalidParameterError):
        wilson(3, 2)
    assert not any(math.isnan(v) for v in wilson(1, 1))


def test_wilson_interval_always_contains_the_observed_rate():
    # a plot's error bars are p - lo and hi - p: both must be >= 0 exactly, also at k = 0 and k = n
    from redteam.bench.metrics import wilson

    for n in range(1, 40):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert lo <= k / n <= hi
    assert wilson(0, 3)[0] == 0.0 and wilson(3, 3)[1] == 1.0
