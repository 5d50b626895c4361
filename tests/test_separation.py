"""Scores that set out-of-scope queries apart, and the metrics of how well they do, whatever the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli


def test_auroc_is_scikit_learns_with_ties():
    from sklearn.metrics import roc_auc_score

    from distill_cli.oos_scores import auroc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # rounded: many ties
    positive = rng.random(200) < 0.3
    assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    assert auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0 and auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1, 0.2], [False, False]) is None


def test_scores_rank_a_flat_answer_above_a_sure_one():
    from distill_cli.oos_scores import energy_score, max_softmax_score

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
        assert out[name]["oos_recall_at_95_in_scope_accuracy"] == 1.0  # all turned away, every intent kept
    from distill_cli.metrics import recall_at_accuracy

    # Four in-scope queries (the second wrong) and two out-of-scope ones; the score ranks one of them in
    # the middle. Keeping 75% in-scope accuracy needs the three right ones accepted: recall 1/2 at most.
    scores = np.array([0.1, 0.2, 0.5, 0.3, 0.4, 0.9])
    oos_rows = np.array([False, False, False, False, True, True])
    right = np.array([True, False, True, True, False, False])
    assert recall_at_accuracy(scores, oos_rows, right, 0.75) == 0.5
    assert recall_at_accuracy(scores, oos_rows, right, 0.5) == 1.0
    assert recall_at_accuracy(scores, oos_rows, right, 0.8) is None  # 3 of 4 right at best
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


def clusters(rng, n=60, d=6):
    """Three intents' features around distinct centres, with a shared anisotropic spread."""
    centres = np.eye(3, d) * 6.0
    labels = np.repeat(np.arange(3), n)
    spread = np.diag([3.0, 0.3, 0.3, 0.3, 0.3, 0.3])
    return centres[labels] + rng.normal(size=(3 * n, d)) @ spread, labels


def test_mahalanobis_ranks_a_far_point_above_a_near_one_and_survives_save_and_load(tmp_path):
    from distill_cli.errors import DistillError
    from distill_cli.oos_scores import STATS_FILE, FeatureStats, out_of_scope_score

    rng = np.random.default_rng(0)
    features, labels = clusters(rng)
    stats = FeatureStats.fit(features, labels)
    near = np.eye(3, 6)[[0]] * 6.0 + [[2.0, 0, 0, 0, 0, 0]]  # along the wide axis: near in Mahalanobis terms
    far = np.eye(3, 6)[[0]] * 6.0 + [[0, 0, 0, 0, 0, 2.0]]  # as far in Euclid, across a narrow axis
    d_near, d_far = stats.distance(np.vstack([near, far]))
    assert d_far > 5 * d_near  # the shared covariance, not the Euclidean distance
    # Its distance is the textbook one: (x - mu)^T Sigma^-1 (x - mu) to the nearest mean.
    from sklearn.covariance import LedoitWolf

    means = np.stack([features[labels == c].mean(0) for c in range(3)])
    precision = LedoitWolf(assume_centered=True).fit(features - means[labels]).precision_
    x = far[0] - means[0]
    assert d_far == pytest.approx(x @ precision @ x, rel=1e-9)
    logits = rng.normal(size=(40, 3))
    queries = rng.normal(size=(40, 6)) * 4
    stats.calibrate(logits, queries)
    stats.save(tmp_path)
    loaded = FeatureStats.load(tmp_path, feature_dim=6)
    for name in ("mahalanobis", "energy+mahalanobis"):
        before, after = (out_of_scope_score(name, logits, queries, s) for s in (stats, loaded))
        assert np.allclose(before, after)
    combined = out_of_scope_score("energy+mahalanobis", logits, queries, loaded)
    assert abs(combined.mean()) < 1e-9  # each part standardised on the queries it was calibrated on
    # Damaged, missing or foreign statistics are one line each, never a silent score.
    with pytest.raises(DistillError, match="does not fit"):
        FeatureStats.load(tmp_path, feature_dim=7)
    (tmp_path / STATS_FILE).write_bytes((tmp_path / STATS_FILE).read_bytes()[:50])
    with pytest.raises(DistillError, match="damaged"):
        FeatureStats.load(tmp_path)
    with pytest.raises(DistillError, match="missing"):
        FeatureStats.load(tmp_path / "nowhere")


def test_the_score_is_chosen_by_validation_auroc_and_its_threshold_by_expected_accuracy():
    from distill_cli.oos import choose_score, choose_threshold, confidence
    from distill_cli.oos_scores import FeatureStats

    rng = np.random.default_rng(1)
    features, labels = clusters(rng)
    stats = FeatureStats.fit(features, labels)
    # Validation: in-scope queries near their intents, out-of-scope ones far off; the logits say nothing.
    val_in, y_in = clusters(rng, n=20)
    val_oos = rng.normal(size=(12, 6)) * 2 + [0, 0, 0, 0, 0, 9.0]
    x, y = np.vstack([val_in, val_oos]), np.concatenate([y_in, [3] * 12])
    logits = np.eye(3)[np.concatenate([y_in, rng.integers(0, 3, 12)])] * 5.0
    stats.calibrate(logits[:60], val_in)
    best, aurocs = choose_score(["max_softmax", "energy", "mahalanobis"], logits, y, 3, x, stats)
    assert best == "mahalanobis" and aurocs["mahalanobis"] == 1.0 and aurocs["max_softmax"] < 0.8
    conf = confidence(best, logits, x, stats)
    rule = choose_threshold(conf, logits.argmax(-1), y, 3, "oos", 0.18, best)
    assert rule.score == "mahalanobis" and rule.needs_features
    preds = rule.apply(logits, 3, x, stats)
    assert (preds[60:] == 3).all() and (preds[:60] == y_in).all()  # perfectly apart: every decision right
    assert conf[:60].min() >= rule.threshold > conf[60:].max()


def test_epochs_are_chosen_by_the_expected_accuracy_with_the_rule_not_by_argmax():
    """Two epochs' validation logits: the first is right more often by argmax, the second tells out-of-scope
    queries apart so well that, with the rule, it is the better model. Selection takes the second."""
    from distill_cli.metrics import EXPECTED, metrics_fn
    from distill_cli.training.record import final_metrics

    labels = ["a", "b", "oos"]
    y = np.array([0] * 8 + [1] * 8 + [2] * 4)
    sure = lambda k: [8.0 if j == k else 0.0 for j in range(3)]  # noqa: E731
    # Epoch 1: every in-scope query right; out-of-scope ones answered "a" as surely as real "a" queries.
    first = np.array([sure(k) for k in y[:16]] + [sure(0)] * 4)
    # Epoch 2: two in-scope queries wrong, but out-of-scope ones flat (the rule turns them away).
    second = first.copy()
    second[[0, 8]] = [sure(1), sure(0)]
    second[16:] = [[0.1, 0.0, 0.0]] * 4
    compute = metrics_fn(labels, "oos", oos_share=0.18)
    epochs = [{"epoch": i + 1, **compute((logits, y))} for i, logits in enumerate((first, second))]
    assert epochs[0]["accuracy"] > epochs[1]["accuracy"]  # argmax prefers the first
    assert epochs[1][EXPECTED.key] > epochs[0][EXPECTED.key]  # the deployed quantity, the second
    assert final_metrics(epochs, best_kept=True)["epoch"] == 2
    # Without out-of-scope validation queries there is no rule to choose: the expected accuracy is accuracy.
    plain = metrics_fn(["a", "b"], None)((first[:16, :2], y[:16]))
    assert plain[EXPECTED.key] == plain["accuracy"] == 1.0


def two_ways_of_asking(rng, n: int, d: int = 8):
    """Three intents' features, the first asked two ways (two clouds of its own), the others one way each."""
    corners = np.eye(d)[[0, 1, 2, 3]] * 6.0
    labels = np.repeat([0, 0, 1, 2], n)
    return np.repeat(corners, n, axis=0) + rng.normal(size=(4 * n, d)) * 0.3, labels


def test_knn_sets_apart_an_unseen_intent_between_two_ways_of_asking_a_known_one(tmp_path):
    """Queries of an unseen intent that lie between the two clouds of a known intent, where that intent's mean
    is: the head is fairly sure of them and the Mahalanobis distance to the mean is small, but no training query
    is near them. The k-th nearest neighbour's similarity sets them apart; max softmax and Mahalanobis do not."""
    from distill_cli.oos_scores import STATS_FILE, FeatureStats, auroc, max_softmax_score, out_of_scope_score

    rng = np.random.default_rng(0)
    train, labels = two_ways_of_asking(rng, 20)
    val_in, _ = two_ways_of_asking(rng, 10)
    unseen = np.eye(8)[0] * 3.0 + np.eye(8)[1] * 3.0 + rng.normal(size=(30, 8)) * 0.3
    x, positive = np.vstack([val_in, unseen]), np.r_[np.zeros(40, bool), np.ones(30, bool)]
    means = np.stack([train[labels == c].mean(0) for c in range(3)])
    logits = x @ means.T / 6.0  # a head that reads the intents' mean directions
    stats = FeatureStats.fit(train, labels)
    aurocs = stats.choose_k(x, positive)
    assert set(aurocs) == {1, 5, 10, 20} and stats.k == 1  # every k up to the smallest intent (20); ties: the least
    knn = auroc(out_of_scope_score("knn", logits, x, stats), positive)
    assert knn > 0.99
    assert knn > auroc(max_softmax_score(logits), positive) + 0.15
    assert knn > auroc(stats.distance(x), positive) + 0.4
    # The score is minus the cosine similarity to the k-th nearest training query.
    stats.k = 5
    z, bank = x / np.linalg.norm(x, axis=1, keepdims=True), train / np.linalg.norm(train, axis=1, keepdims=True)
    expected = -np.sort(z @ bank.T, axis=1)[:, -5]
    assert np.allclose(out_of_scope_score("knn", logits, x, stats), expected, atol=2e-3)  # the bank is float16
    # Saved and loaded: the same vectors and k, so the same scores; a file with no vectors cannot give knn.
    stats.save(tmp_path)
    loaded = FeatureStats.load(tmp_path, feature_dim=8)
    assert loaded.k == 5 and np.array_equal(out_of_scope_score("knn", logits, x, loaded), stats.knn(x))
    stats.bank = None
    stats.save(tmp_path)
    with pytest.raises(ValueError, match="did not keep"):
        out_of_scope_score("knn", logits, x, FeatureStats.load(tmp_path))
    # Fewer training queries an intent than a k: only the ks it has are tried.
    few = FeatureStats.fit(*two_ways_of_asking(rng, 3))
    assert set(few.choose_k(x, positive)) == {1} and few.k == 1
    # A bank of another width is refused, in one line.
    from safetensors.numpy import load_file, save_file

    from distill_cli.errors import DistillError

    stats.bank = np.ones((4, 8), np.float32) / np.sqrt(8)
    stats.save(tmp_path)
    tensors = load_file(str(tmp_path / STATS_FILE))
    save_file({**tensors, "bank": np.ones((4, 7), np.float16)}, str(tmp_path / STATS_FILE))
    with pytest.raises(DistillError, match="does not fit"):
        FeatureStats.load(tmp_path)
