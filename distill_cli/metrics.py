"""Classification metrics, computed locally (the `evaluate` library loads its metrics from the Hub).

With an out-of-scope label, also the CLINC150 paper's metrics (Larson et al. 2019): in-scope accuracy
over the queries whose true label is not out-of-scope, and out-of-scope recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
