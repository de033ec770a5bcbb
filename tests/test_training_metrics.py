"""Fine-tuning metrics against hand-computed values and brute-force definitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lrgen.training.metrics import auprc, auroc, bootstrap_ci, macro, pearson, r2


def test_auroc_hand_computed():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 3 of 4 pairs ranked right
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert auroc([1, 0], [0.9, 0.1]) == pytest.approx(1.0)
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_auprc_hand_computed():
    # ranked 0.8(+) 0.4(-) 0.35(+) 0.1(-): precision 1 at recall 1/2, 2/3 at recall 1
    assert auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # tied top pair (one +, one -) is one step: precision 1/2 at recall 1/2, then 2/3 at recall 1
    assert auprc([1, 0, 1], [0.9, 0.9, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert math.isnan(auprc([0, 0], [0.1, 0.2]))


def test_r2_and_pearson_hand_computed():
    assert r2([1, 2, 3], [1, 2, 2]) == pytest.approx(1 - 1 / 2)
    assert r2([1, 2, 3], [2, 2, 2]) == pytest.approx(0.0)
    # yc = (-1, 0, 1), pc = (-7/3, -1/3, 8/3): sum(yc·pc) = 5, |yc|² = 2, |pc|² = 38/3
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 38 / 3))
    assert math.isnan(r2([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))


def _auroc_pairs(y, s):
    pos = [v for v, t in zip(s, y) if t]
    neg = [v for v, t in zip(s, y) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _auprc_steps(y, s):
    total, prev_recall = 0.0, 0.0
    for thr in sorted(set(s), reverse=True):
        sel = s >= thr
        tp = float(np.sum(y[sel]))
        recall = tp / y.sum()
        total += (recall - prev_recall) * tp / sel.sum()
        prev_recall = recall
    return total


def test_against_brute_force_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = rng.integers(0, 2, 60)
        s = np.round(rng.random(60), 1)  # many ties
        assert auroc(y, s) == pytest.approx(_auroc_pairs(y, s), abs=1e-12)
        assert auprc(y, s) == pytest.approx(_auprc_steps(y, s), abs=1e-12)


def test_macro_averages_defined_columns_and_flattens_bins():
    y = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])  # column 1 has one class: skipped
    s = np.array([[0.1, 0.5], [0.9, 0.2], [0.2, 0.3], [0.8, 0.4]])
    assert macro("auroc", y, s) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    y3 = rng.normal(size=(4, 6, 3))
    p3 = y3 + rng.normal(scale=0.5, size=y3.shape)
    flat = np.mean([r2(y3[..., j].ravel(), p3[..., j].ravel()) for j in range(3)])
    assert macro("r2", y3, p3) == pytest.approx(flat)
    with pytest.raises(ValueError):
        macro("r2", y3, p3[:, :3])


def test_bootstrap_interval_brackets_estimate_and_is_reproducible():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = y * 0.5 + rng.random(200)
    lo, hi = bootstrap_ci("auroc", y, s, 200, seed=3)
    assert lo < auroc(y, s) < hi
    assert (lo, hi) == bootstrap_ci("auroc", y, s, 200, seed=3)
    assert all(math.isnan(v) for v in bootstrap_ci("auroc", np.ones(5), np.arange(5.0), 20))
