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
    Metric("latency_ms_mean", "latency", "latency ms (mean)", None, "{:.2f}"),
    Metric("latency_ms_p95", "p95", "latency ms (p95)", None, "{:.2f}"),
    Metric("throughput_qps", "throughput", "throughput q/s", None, "{:.0f}"),
    Metric("size_mb", "size", "size MB", None, "{:.1f}"),
    Metric("parameters", "parameters", "parameters", None, "{:,}"),
)
QUALITY_KEYS = tuple(m.key for m in QUALITY)


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


def metrics_fn(labels: list[str], oos_label: str | None):
    """``compute_metrics`` for a ``Trainer``: argmax predictions against the labels."""
    oos_id = labels.index(oos_label) if oos_label in labels else None

    def compute(eval_pred):
        logits, label_ids = eval_pred
        return classification_metrics(label_ids, np.argmax(logits, axis=-1), oos_id)

    return compute


def format_metrics(metrics: dict, prefix: str = "") -> str:
    """One progress line: ``validation accuracy 0.9333, macro-F1 ...`` for the metrics that are set."""
    parts = [f"{m.short} {metrics[prefix + m.key]:.4f}" for m in QUALITY if metrics.get(prefix + m.key) is not None]
    return "validation " + ", ".join(parts)
