"""A fallback for every model: data with no out-of-scope label still gets a rule, which turns away a stated
share of in-scope validation queries and answers the out-of-scope label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DEMO, TRAIN_FLAGS, assert_one_line_error, run_cli


def test_the_reject_threshold_turns_away_its_share_of_validation():
    from distill_cli.oos import choose_reject_threshold

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=400)
    for share in (0.01, 0.05, 0.2):
        rule = choose_reject_threshold(probs.max(-1), "oos", share)
        turned_away = float((probs.max(-1) < rule.threshold).mean())
        assert share - 2 / 400 <= turned_away <= share, (share, turned_away)
        assert rule.is_fallback and rule.reject_share == share and rule.oos_label == "oos"


@pytest.mark.parametrize("n", [150, 40])
def test_the_reject_threshold_turns_away_at_most_its_share_of_new_queries(n):
    """Set on n validation queries, the threshold turns away at most the share of new queries drawn like
    them, on average over draws, and not much less (k / (n + 1) with k = floor(share * (n + 1))): the plain
    quantile of validation turned away 6.0% for 5% at n = 150."""
    from distill_cli.oos import choose_reject_threshold

    rng = np.random.default_rng(7)
    share, rates = 0.05, []
    for _ in range(400):
        validation, new = rng.normal(size=n), rng.normal(size=2000)
        rule = choose_reject_threshold(validation, "oos", share, score="energy")
        rates.append(float((new < rule.threshold).mean()))
    k = int(share * (n + 1))
    assert abs(np.mean(rates) - k / (n + 1)) < 0.003, np.mean(rates)
    assert share - 1 / (n + 1) <= k / (n + 1) <= share
    # Too few queries for the share (k would be 0): the lowest is the threshold, and nothing below it is turned away.
    rule = choose_reject_threshold(np.array([0.9, 0.5, 0.7]), "oos", share)
    assert rule.threshold == 0.5


@pytest.fixture
def in_scope_only(tmp_path):
    """The demo data with every out-of-scope query removed (CLINC150's layout), and the full data."""
    data = json.loads(DEMO.read_text())
    path = tmp_path / "in-scope.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if not k.startswith("oos_")}))
    return path


def test_data_without_out_of_scope_queries_gets_the_fallback(tiny_bert, in_scope_only, tmp_path):
    flags = (*TRAIN_FLAGS[2:], "--dataset", in_scope_only, "--student", tiny_bert, "--epochs", "3")
    r = run_cli("finetune", *flags, "--oos-reject", "0.2", "--name", "f", "--json")
    assert r.code == 0, r.stderr
    rule = json.loads((tmp_path / "runs" / "f" / "run.json").read_text())["oos_rule"]
    assert rule["reject_share"] == 0.2 and rule["oos_label"] == "oos" and rule["curve"] == []
    assert rule["score"] == "energy+mahalanobis" and rule["score_auroc"] == {}  # the default: nothing to choose on
    # predict applies it: below the threshold, the answer is the out-of-scope label.
    texts = [t for t, _ in json.loads(DEMO.read_text())["val"]]
    p = run_cli("predict", "f", *texts, "--json")
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    below = [a["confidence"] < rule["threshold"] for a in answers]
    assert any(below) and not all(below)
    for a, low in zip(answers, below):
        assert a["out_of_scope"] == low and (a["intent"] == "oos") == low
    assert 0.05 <= np.mean(below) <= 0.4  # about its share of in-scope validation queries
    # evaluate on test with the out-of-scope queries put back: the model has no oos output, the rule answers it.
    e = run_cli("evaluate", "f", "--dataset", DEMO, "--latency-runs", "2", "--json")
    assert e.code == 0, e.stderr
    m = e.json["models"][0]
    assert m["oos_recall"] == 0.0 and m["oos_rule"]["oos_recall"] > 0.0  # argmax never says oos; the rule does
    assert 0.0 < m["oos_rule"]["in_scope_rejected"] < 0.6 and m["oos_rule"]["reject_share"] == 0.2
    # On data with no out-of-scope query either: what it turned away counts against it, and is reported.
    e = run_cli("evaluate", "f", "--dataset", in_scope_only, "--latency-runs", "2", "--json")
    assert e.code == 0, e.stderr
    m = e.json["models"][0]
    turned = m["oos_rule"]["in_scope_rejected"]
    assert 0.0 < turned < 0.6 and m["oos_rule"]["accuracy"] <= m["accuracy"]  # with no oos, turning away only costs
    assert "oos" in {c["intent"] for r in m["per_intent"] for c in r["confused_with"]}
    # --oos-reject 0: no fallback.
    r = run_cli("finetune", *flags, "--oos-reject", "0", "--name", "g")
    assert r.code == 0 and json.loads((tmp_path / "runs" / "g" / "run.json").read_text())["oos_rule"] is None


def test_bad_fallback_settings(tiny_bert, in_scope_only):
    flags = (*TRAIN_FLAGS[2:], "--dataset", in_scope_only, "--student", tiny_bert)
    for bad in ("1", "1.5", "-0.1"):
        assert_one_line_error(run_cli("finetune", *flags, "--oos-reject", bad), 2, "oos_reject")
    r = run_cli("finetune", *flags, "--oos-rule", "threshold")
    assert_one_line_error(r, 2, "needs an out-of-scope label", "add out-of-scope queries", "oos_reject")
