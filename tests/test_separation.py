"""Scores that set out-of-scope queries apart, and the metrics of how well they do, whatever the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli


def test_auroc_is_scikit_learns_with_ties():
    from sklearn.metrics import roc_auc_score

    from distill_cli.metrics import auroc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # rounded: many ties
    positive = rng.random(200) < 0.3
    assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    assert auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0 and auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1, 0.2], [False, False]) is None


def test_scores_rank_a_flat_answer_above_a_sure_one():
    from distill_cli.metrics import energy_score, max_softmax_score

    sure, flat = [8.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    for score in (energy_score, max_softmax_score):
        low, high = score(np.array([sure, flat]))
        assert high > low, score.__name__
    assert energy_score(np.array([[0.0, 0.0]]))[0] == pytest.approx(-np.log(2))
    assert max_softmax_score(np.array([[0.0, 0.0]]))[0] == pytest.approx(0.5)


def test_separation_at_95_percent_acceptance_leaves_the_oos_output_out():
    from distill_cli.metrics import separation

    # 20 in-scope queries of intent 0 or 1, sure of themselves; 5 out-of-scope ones (label 2), flat but with a
    # large out-of-scope logit that the scores must not read.
    in_scope = np.array([[6.0 + i * 0.1, 0.0, -9.0] for i in range(20)])
    in_scope[10:] = in_scope[10:, [1, 0, 2]]
    oos = np.array([[0.0, 0.2 * i, 30.0] for i in range(5)])
    logits, y = np.vstack([in_scope, oos]), np.array([0] * 10 + [1] * 10 + [2] * 5)
    out = separation(logits, y, oos_id=2)
    for name in ("max_softmax", "energy"):
        assert out[name]["auroc"] == 1.0 and out[name]["fpr_at_95_tpr"] == 0.0, name
        assert out[name]["in_scope_accuracy_at_95_tpr"] == pytest.approx(0.95, abs=0.051)
    # Without out-of-scope queries there is nothing to separate.
    assert separation(in_scope, y[:20], oos_id=2)["energy"]["auroc"] is None


def test_evaluate_reports_how_well_each_score_separates(runs):
    r = run_cli("evaluate", "teacher", "student", "--runs-dir", runs, "--latency-runs", "2", "--json")
    assert r.code == 0, r.stderr
    for m in r.json["models"]:
        for name in ("max_softmax", "energy"):
            s = m["separation"][name]
            assert 0.0 <= s["auroc"] <= 1.0 and 0.0 <= s["fpr_at_95_tpr"] <= 1.0
    assert "AUROC (max softmax)" in r.stderr and "FPR at 95% TPR (energy)" in r.stderr
