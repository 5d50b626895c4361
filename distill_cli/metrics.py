"""Classification metrics, computed locally (the `evaluate` library loads its metrics from the Hub), and the
one table of metric keys and the labels they are shown under.

With an out-of-scope label, also the CLINC150 paper's metrics (Larson et al. 2019): in-scope accuracy
over the queries whose true label is not out-of-scope, and out-of-scope recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    key: str  # in run.json, eval_results.json and --json output
    short: str  # progress lines and the per-epoch table
    long: str  # evaluate's table and the model card
    card_type: str | None  # the model-index metric type; None keeps it off the card
    fmt: str = "{:.4f}"


QUALITY = (
    Metric("accuracy", "accuracy", "accuracy", "accuracy"),
    Metric("macro_f1", "macro-F1", "macro-F1", None),
    Metric("in_scope_accuracy", "in-scope", "in-scope accuracy", "accuracy"),
    Metric("oos_recall", "oos recall", "out-of-scope recall", "recall"),
)
COST = (
    Metric("latency_ms_median", "latency", "latency ms (median)", None, "{:.2f}"),
    Metric("latency_ms_mean", "mean", "latency ms (mean)", None, "{:.2f}"),
    Metric("latency_ms_p95", "p95", "latency ms (p95)", None, "{:.2f}"),
    Metric("throughput_qps", "throughput", "throughput q/s", None, "{:.0f}"),
    Metric("size_mb", "size", "size MB", None, "{:.1f}"),
    Metric("parameters", "parameters", "parameters", None, "{:,}"),
)
QUALITY_KEYS = tuple(m.key for m in QUALITY)
# What the kept epoch and search trials are chosen by: the expected accuracy at oos_share with the best rule
# on the logits where validation has out-of-scope queries (``oos.best_expected_accuracy``), else accuracy.
EXPECTED = Metric("expected_accuracy", "expected", "expected accuracy with the rule", None)
# How well a score sets out-of-scope queries apart (``separation``), for each score of ``SCORES``.
SEPARATION = (
    Metric("auroc", "AUROC", "AUROC", None),
    Metric("fpr_at_95_tpr", "FPR@95", "FPR at 95% TPR", None),
)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], oos_id: int | None = None) -> dict:
    from sklearn.metrics import f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)) if len(y_true) else 0.0,
        "in_scope_accuracy": None,
        "oos_recall": None,
    }
    if oos_id is not None:
        in_scope, oos = y_true != oos_id, y_true == oos_id
        out["in_scope_accuracy"] = float((y_pred[in_scope] == y_true[in_scope]).mean()) if in_scope.any() else None
        out["oos_recall"] = float((y_pred[oos] == oos_id).mean()) if oos.any() else None
    return out


def metrics_fn(labels: list[str], oos_label: str | None, oos_share: float = 0.18):
    """``compute_metrics`` for a ``Trainer``: argmax predictions against the labels, and what epochs and
    trials are chosen by (``EXPECTED``)."""
    oos_id = labels.index(oos_label) if oos_label in labels else None

    def compute(eval_pred):
        from distill_cli.oos import best_expected_accuracy

        logits, label_ids = eval_pred
        out = classification_metrics(label_ids, np.argmax(logits, axis=-1), oos_id)
        expected = None
        if oos_id is not None:
            expected = best_expected_accuracy(np.asarray(logits), label_ids, oos_id, oos_share)
        out[EXPECTED.key] = out["accuracy"] if expected is None else expected
        return out

    return compute


def format_metrics(metrics: dict, prefix: str = "") -> str:
    """One progress line: ``validation accuracy 0.9333, macro-F1 ...`` for the metrics that are set."""
    parts = [f"{m.short} {metrics[prefix + m.key]:.4f}" for m in QUALITY if metrics.get(prefix + m.key) is not None]
    return "validation " + ", ".join(parts)


def per_intent(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str], top: int = 3) -> list[dict]:
    """Per intent (every one the queries hold or the model answered): precision, recall, F1, support, and the
    intents its queries were most often taken for (``confused_with``, with counts); worst F1 first."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = sorted(set(int(y) for y in y_true) | set(int(y) for y in y_pred))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=ids)
    rows = []
    for k, i in enumerate(ids):
        wrong = matrix[k].copy()
        wrong[k] = 0
        confused = [
            {"intent": labels[ids[j]], "count": int(wrong[j])} for j in np.argsort(-wrong, kind="stable")[:top]
            if wrong[j] > 0
        ]  # fmt: skip
        rows.append(
            {
                "intent": labels[i],
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "confused_with": confused,
            }
        )
    return sorted(rows, key=lambda r: (r["f1"], r["intent"]))


def most_confused(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str], size: int = 12) -> dict:
    """The confusion matrix of the ``size`` intents with the most errors (as truth or as answer): rows are
    the true intents, columns the answers."""
    from sklearn.metrics import confusion_matrix

    ids = sorted(set(int(y) for y in y_true) | set(int(y) for y in y_pred))
    matrix = confusion_matrix(y_true, y_pred, labels=ids)
    errors = matrix.sum(0) + matrix.sum(1) - 2 * np.diag(matrix)
    keep = sorted(np.argsort(-errors, kind="stable")[:size].tolist())
    keep = [k for k in keep if errors[k] > 0]
    return {"intents": [labels[ids[k]] for k in keep], "matrix": matrix[np.ix_(keep, keep)].tolist()}


def score_histogram(conf: np.ndarray, y_true: Sequence[int], oos_id: int, score: str, bins: int = 20) -> dict:
    """How the rule's confidence (the top probability, or ``-score`` of another score) spreads over in-scope
    and out-of-scope queries: counts per bin of [0, 1] for the top probability, else of its observed range."""
    conf, y = np.asarray(conf, dtype=float), np.asarray(y_true)
    low, high = (0.0, 1.0) if score == "max_softmax" else (float(conf.min()), float(conf.max()) + 1e-9)
    edges = np.linspace(low, high, bins + 1)
    return {
        "score": score,
        "edges": [round(float(e), 4) for e in edges],
        "in_scope": np.histogram(conf[y != oos_id], edges)[0].tolist(),
        "oos": np.histogram(conf[y == oos_id], edges)[0].tolist(),
    }


def separation(
    logits: np.ndarray, y_true: Sequence[int], oos_id: int, features=None, stats=None, acceptance: float = 0.95
) -> dict:
    """How well each score (``oos_scores.SCORES``; the feature scores where the model has their statistics)
    sets out-of-scope queries apart from in-scope ones, whatever the threshold: AUROC (out of scope as the
    positive class); at the threshold that accepts ``acceptance`` of the in-scope queries, the share of
    out-of-scope queries accepted too (FPR at 95% TPR) and the in-scope accuracy (right and accepted). The
    scores read the in-scope outputs: a model's own out-of-scope output, if it has one (``oos_id`` is a
    column), is left out, as the open-set literature does."""
    from distill_cli.oos import confidence
    from distill_cli.oos_scores import FEATURE_SCORES, SCORES, auroc

    y = np.asarray(y_true)
    intents = [i for i in range(logits.shape[-1]) if i != oos_id]
    oos, right = y == oos_id, np.asarray(intents)[logits[:, intents].argmax(-1)] == y
    out = {}
    for name in SCORES:
        if name in FEATURE_SCORES and (stats is None or not stats.gives(name)):
            continue
        if not oos.any() or oos.all():
            out[name] = dict.fromkeys(
                ("auroc", "fpr_at_95_tpr", "in_scope_accuracy_at_95_tpr", "oos_recall_at_95_in_scope_accuracy")
            )
            continue
        scores = -confidence(name, logits, features, stats, intents)
        threshold = np.quantile(scores[~oos], acceptance)
        accepted = scores <= threshold
        out[name] = {
            "auroc": auroc(scores, oos),
            "fpr_at_95_tpr": float(accepted[oos].mean()),
            "in_scope_accuracy_at_95_tpr": float((right & accepted)[~oos].mean()),
            "oos_recall_at_95_in_scope_accuracy": recall_at_accuracy(scores, oos, right, 0.95),
        }
    return out


def recall_at_accuracy(scores: np.ndarray, oos: np.ndarray, right: np.ndarray, floor: float) -> float | None:
    """The most out-of-scope recall any threshold on ``scores`` reaches while the in-scope accuracy (right and
    accepted) stays at ``floor`` or above; None when even accepting everything is below it."""
    order = np.argsort(scores, kind="stable")  # accept the lowest scores first
    s, is_oos, is_right = scores[order], oos[order], (right & ~oos)[order]
    n_in, n_oos = int((~oos).sum()), int(oos.sum())
    # Cut after position k (accept s[:k+1]); only where the next score differs, so ties go together.
    cuts = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    accuracy = np.cumsum(is_right)[cuts] / n_in
    recall = 1.0 - np.cumsum(is_oos)[cuts] / n_oos
    ok = accuracy >= floor
    return float(recall[ok].max()) if ok.any() else None


def separation_rows(models: list) -> list[tuple[str, Metric]]:
    """(score, metric) for each separation measure, when a model of the report (``records.ModelResult``) has
    them (data with out-of-scope queries); none otherwise."""
    from distill_cli.oos_scores import SCORES

    shown = [s for s in SCORES if any(s in (m.separation or {}) for m in models)]
    return [(score, metric) for score in shown for metric in SEPARATION]
