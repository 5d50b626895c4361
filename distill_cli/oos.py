"""The out-of-scope rule: answer out-of-scope when the model's confidence is below a threshold.

The confidence is ``-score`` of one of ``oos_scores.SCORES`` (for ``max_softmax``, the top probability
itself). The score is chosen on validation by its AUROC where validation has out-of-scope queries (the one
criterion that uses every query, not one threshold's few), else ``DEFAULT_SCORE``. The threshold is chosen
on validation, never on test, by the expected accuracy at the deployment's share of out-of-scope traffic
``π`` (``oos_share``)::

    (1 - π) * in-scope accuracy(τ) + π * out-of-scope recall(τ)

Validation's own share says little about deployment (CLINC150 "plus": 3% out of scope in validation,
18% in test): maximising plain validation accuracy picks too low a threshold, and the mean of in-scope
accuracy and recall (π = 0.5) too high a one. The default π = 0.18 is the share of out-of-scope queries
in the evaluation that CLINC150's authors designed (Larson et al. 2019: 1,000 of 5,500 test queries).
Without out-of-scope queries, the fallback turns away at most a stated share of in-scope queries like
validation's (``choose_reject_threshold``).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, field_validator

from distill_cli.errors import UsageError
from distill_cli.oos_scores import FEATURE_SCORES, SCORES, FeatureStats, auroc, out_of_scope_score

# Measured on CLINC150 open-set and without out-of-scope data (BENCHMARKS.md): the best AUROC and the best
# recall at the fallback's share, ahead of energy, Mahalanobis and max softmax alone.
DEFAULT_SCORE = "energy+mahalanobis"
GRID = np.round(np.arange(0.0, 1.0, 0.01), 2)  # top-probability thresholds
QUANTILES = np.linspace(0.0, 1.0, 401)  # other scores: thresholds at these quantiles of validation

EXPECTED_ACCURACY = "expected accuracy at oos_share: (1 - share) * in-scope accuracy + share * oos recall"
REJECT_SHARE = "the fallback: turns away at most oos_reject of in-scope queries like validation's"


class OOSRule(BaseModel):
    """A threshold on a confidence, with what it did on validation (stored in run.json)."""

    threshold: float
    oos_label: str
    oos_share: float | None = None  # the expected-accuracy rule's weight
    reject_share: float | None = None  # the fallback's share of in-scope validation queries turned away
    score: str = "max_softmax"
    criterion: str = EXPECTED_ACCURACY
    # validation AUROC of each score tried, where the score was chosen by it
    score_auroc: dict[str, float] = {}
    # (threshold, in-scope accuracy, out-of-scope recall) on validation, for `evaluate --plot`
    curve: list[tuple[float, float, float]] = []

    @field_validator("score", mode="before")
    @classmethod
    def _known_score(cls, value: str) -> str:
        value = "max_softmax" if value == "max_softmax_probability" else value  # runs before the other scores
        if value not in SCORES:
            raise ValueError(f"unknown out-of-scope score '{value}' (one of {', '.join(SCORES)})")
        return value

    @property
    def is_fallback(self) -> bool:
        """Chosen without out-of-scope queries: a share of in-scope queries turned away."""
        return self.reject_share is not None

    def describe(self) -> str:
        """One line: what answers out of scope, and (the fallback) why there."""
        if self.score == "max_softmax":
            text = f"top probability < {self.threshold:.2f}"
        else:
            text = f"{self.score} confidence < {self.threshold:.4g}"
        if self.is_fallback:
            share = f"{self.reject_share:.0%}"
            text += f" (the fallback: at most {share} of in-scope queries like validation's fall below it)"
        return text

    @property
    def needs_features(self) -> bool:
        return self.score in FEATURE_SCORES

    def intents(self, labels: list[str]) -> list[int]:
        """The outputs the scores read: every label of ``labels`` (the model's, in output order) but this
        rule's out-of-scope one."""
        return [i for i, name in enumerate(labels) if name != self.oos_label]

    def confidence(self, logits, features=None, stats=None, intents=None) -> np.ndarray:
        return confidence(self.score, logits, features, stats, intents)

    def apply(self, logits, oos_id: int, features=None, stats=None, intents=None) -> np.ndarray:
        """Argmax predictions, replaced by ``oos_id`` where the confidence is below the threshold."""
        return decide(logits.argmax(-1), self.confidence(logits, features, stats, intents), oos_id, self.threshold)


def saved_stats(folder, rule: OOSRule | None, always: bool = False) -> FeatureStats | None:
    """The feature statistics saved with the model in ``folder``: required where its rule reads them, read
    where they are there with ``always`` (``evaluate`` reports every score), else None."""
    from pathlib import Path

    from distill_cli.oos_scores import STATS_FILE

    if folder is None:
        return None
    needed = rule is not None and rule.needs_features
    return FeatureStats.load(Path(folder)) if needed or (always and (Path(folder) / STATS_FILE).is_file()) else None


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(score: str, logits, features=None, stats: FeatureStats | None = None, intents=None) -> np.ndarray:
    """``-score``: higher means more in scope. Each reads the intents' columns (``intents``, default all):
    a model's trained out-of-scope output is left out, as the open-set literature does. For ``max_softmax``
    that is the top probability of an intent (the softmax over every output, so a query the model gives to
    its out-of-scope output has a low one)."""
    logits = np.asarray(logits)
    if score == "max_softmax":
        probs = softmax(logits)
        return (probs if intents is None else probs[:, intents]).max(-1)
    return -out_of_scope_score(score, logits if intents is None else logits[:, intents], features, stats)


def decide(preds: np.ndarray, conf: np.ndarray, oos_id: int, threshold: float) -> np.ndarray:
    return np.where(conf < threshold, oos_id, preds)


def rates(preds: np.ndarray, y: np.ndarray, oos_id: int) -> tuple[float, float]:
    """In-scope accuracy and out-of-scope recall."""
    in_scope, oos = y != oos_id, y == oos_id
    return float((preds[in_scope] == y[in_scope]).mean()), float((preds[oos] == oos_id).mean())


def thresholds(score: str, conf: np.ndarray) -> np.ndarray:
    """The thresholds tried: ``GRID`` for the top probability; else quantiles of validation's confidences,
    the lowest below them all (nothing turned away)."""
    if score == "max_softmax":
        return GRID
    return np.unique(np.concatenate([[conf.min() - 1.0], np.quantile(conf, QUANTILES)]))


def choose_threshold(
    conf: np.ndarray, preds: np.ndarray, y: np.ndarray, oos_id: int, oos_label: str, oos_share: float,
    score: str = "max_softmax",
) -> OOSRule:  # fmt: skip
    """The threshold that maximises the expected accuracy at ``oos_share``; among equal best ones, the
    middle one (the least sensitive to where validation's few out-of-scope queries fall)."""
    y = np.asarray(y)
    if not (y == oos_id).any() or (y == oos_id).all():
        raise UsageError(f"the out-of-scope rule needs validation queries both labelled '{oos_label}' and not")
    grid = thresholds(score, conf)
    curve = [(float(t), *rates(decide(preds, conf, oos_id, t), y, oos_id)) for t in grid]
    expected = np.array([(1 - oos_share) * acc + oos_share * rec for _, acc, rec in curve])
    best = np.flatnonzero(np.isclose(expected, expected.max()))
    threshold = float(grid[best[len(best) // 2]])
    curve = [tuple(round(v, 4) for v in c) for c in curve]
    return OOSRule(threshold=threshold, oos_label=oos_label, oos_share=oos_share, score=score, curve=curve)


def choose_reject_threshold(conf: np.ndarray, oos_label: str, share: float, score: str = "max_softmax") -> OOSRule:
    """The fallback for data without out-of-scope queries: the threshold that turns away at most ``share`` of
    in-scope traffic like the (in-scope) validation queries, answered ``oos_label``, whatever the model is least
    sure of with it.

    It is the k-th lowest of the n validation confidences, k = ⌊share·(n + 1)⌋ (at least 1), and a confidence
    below it is turned away: a new query exchangeable with validation's falls below it with probability
    k / (n + 1) ≤ share (split conformal). The plain quantile (``np.quantile(conf, share, "higher")``, before)
    turned away (⌈share·(n − 1)⌉ + 1) / (n + 1): 6.0% for 5% on 150 queries, and it overshot on every few-shot
    set of the suite (BENCHMARKS.md, "The fallback's threshold")."""
    ranked = np.sort(np.asarray(conf, dtype=np.float64))
    k = min(max(1, int(np.floor(share * (len(ranked) + 1) + 1e-9))), len(ranked))
    return OOSRule(
        threshold=float(ranked[k - 1]), oos_label=oos_label, reject_share=share, criterion=REJECT_SHARE, score=score
    )


def best_expected_accuracy(logits, y, oos_id: int, oos_share: float) -> float | None:
    """The expected accuracy at ``oos_share`` that the best rule on the logits alone (max softmax or energy,
    best threshold) reaches on these queries: what training selects epochs and trials by, since it is the
    quantity that is deployed (the feature scores need the statistics fitted after training). None without
    both in-scope and out-of-scope queries."""
    y = np.asarray(y)
    if not (y == oos_id).any() or (y == oos_id).all():
        return None
    preds, intents = logits.argmax(-1), [i for i in range(logits.shape[1]) if i != oos_id]
    best = 0.0
    for score in ("max_softmax", "energy"):
        conf = confidence(score, logits, intents=intents)
        for t in thresholds(score, conf):
            acc, rec = rates(decide(preds, conf, oos_id, t), y, oos_id)
            best = max(best, (1 - oos_share) * acc + oos_share * rec)
    return float(best)


def choose_rule(
    candidates: list[str], fallback: bool, logits, y, oos_id: int, oos_label: str, share: float,
    features=None, stats: FeatureStats | None = None, intents=None,
) -> OOSRule:  # fmt: skip
    """The rule on validation's ``logits`` (and ``features``, with ``stats`` already calibrated): the fallback
    turns away ``share`` of the queries with the one candidate, else ``DEFAULT_SCORE``; otherwise the score is
    the candidate of the best AUROC (``knn`` with its own best k) and the threshold the best expected accuracy
    at ``share``."""
    if fallback:
        score = candidates[0] if len(candidates) == 1 else DEFAULT_SCORE
        return choose_reject_threshold(confidence(score, logits, features, stats, intents), oos_label, share, score)
    if "knn" in candidates and stats is not None:  # its k first, on the same queries and by the same AUROC
        stats.choose_k(features, np.asarray(y) == oos_id)
    score, aurocs = choose_score(candidates, logits, y, oos_id, features, stats, intents)
    conf = confidence(score, logits, features, stats, intents)
    rule = choose_threshold(conf, np.asarray(logits).argmax(-1), y, oos_id, oos_label, share, score)
    rule.score_auroc = aurocs if len(candidates) > 1 else {}
    return rule


def choose_score(
    candidates: list[str], logits, y, oos_id: int, features=None, stats=None, intents=None
) -> tuple[str, dict[str, float]]:
    """The candidate with the best validation AUROC (out of scope as the positive class; ties: the first),
    and each one's AUROC."""
    positive = np.asarray(y) == oos_id
    aurocs = {s: round(auroc(-confidence(s, logits, features, stats, intents), positive), 5) for s in candidates}
    return max(candidates, key=lambda s: aurocs[s]), aurocs
