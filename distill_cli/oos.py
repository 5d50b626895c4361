"""The out-of-scope rule: answer out-of-scope when the model's top probability is below a threshold.

The threshold is chosen on validation, never on test, by the expected accuracy at the deployment's share
of out-of-scope traffic ``π`` (``oos_share``)::

    (1 - π) * in-scope accuracy(τ) + π * out-of-scope recall(τ)

Validation's own share says little about deployment (CLINC150 "plus": 3% out of scope in validation,
18% in test): maximising plain validation accuracy picks too low a threshold, and the mean of in-scope
accuracy and recall (π = 0.5) too high a one. The default π = 0.18 is the share of out-of-scope queries
in the evaluation that CLINC150's authors designed (Larson et al. 2019: 1,000 of 5,500 test queries).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from distill_cli.errors import UsageError

SCORE = "max_softmax_probability"
GRID = np.round(np.arange(0.0, 1.0, 0.01), 2)


EXPECTED_ACCURACY = "expected accuracy at oos_share: (1 - share) * in-scope accuracy + share * oos recall"
REJECT_SHARE = "the fallback: turns away oos_reject of the in-scope validation queries"


class OOSRule(BaseModel):
    """A threshold on the top softmax probability, with what it did on validation (stored in run.json)."""

    threshold: float
    oos_label: str
    oos_share: float | None = None  # the expected-accuracy rule's weight
    reject_share: float | None = None  # the fallback's share of in-scope validation queries turned away
    score: str = SCORE
    criterion: str = EXPECTED_ACCURACY
    # (threshold, in-scope accuracy, out-of-scope recall) on validation, for `evaluate --plot`
    curve: list[tuple[float, float, float]] = []

    @property
    def is_fallback(self) -> bool:
        """Chosen without out-of-scope queries: a share of in-scope queries turned away."""
        return self.reject_share is not None


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def apply_rule(probs: np.ndarray, oos_id: int, threshold: float) -> np.ndarray:
    """Argmax predictions, replaced by ``oos_id`` where the top probability is below ``threshold``."""
    preds = probs.argmax(axis=-1)
    return np.where(probs.max(axis=-1) < threshold, oos_id, preds)


def rates(preds: np.ndarray, y: np.ndarray, oos_id: int) -> tuple[float, float]:
    """In-scope accuracy and out-of-scope recall."""
    in_scope, oos = y != oos_id, y == oos_id
    return float((preds[in_scope] == y[in_scope]).mean()), float((preds[oos] == oos_id).mean())


def choose_threshold(probs: np.ndarray, y: np.ndarray, oos_id: int, oos_label: str, oos_share: float) -> OOSRule:
    """The threshold on ``GRID`` that maximises the expected accuracy at ``oos_share``; among equal best
    ones, the middle one (the least sensitive to where validation's few out-of-scope queries fall)."""
    y = np.asarray(y)
    if not (y == oos_id).any() or (y == oos_id).all():
        raise UsageError(f"the out-of-scope rule needs validation queries both labelled '{oos_label}' and not")
    curve = [(float(t), *rates(apply_rule(probs, oos_id, t), y, oos_id)) for t in GRID]
    scores = np.array([(1 - oos_share) * acc + oos_share * rec for _, acc, rec in curve])
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    threshold = float(GRID[best[len(best) // 2]])
    curve = [tuple(round(v, 4) for v in c) for c in curve]
    return OOSRule(threshold=threshold, oos_label=oos_label, oos_share=oos_share, curve=curve)


def choose_reject_threshold(probs: np.ndarray, oos_label: str, share: float) -> OOSRule:
    """The fallback for data without out-of-scope queries: the threshold under which ``share`` of the
    (in-scope) validation queries' top probabilities fall, so that about that share of in-scope traffic is
    turned away as ``oos_label``, and whatever the model is least sure of with it."""
    top = probs.max(axis=-1)
    threshold = float(np.quantile(top, share, method="higher"))
    return OOSRule(threshold=threshold, oos_label=oos_label, reject_share=share, criterion=REJECT_SHARE)
