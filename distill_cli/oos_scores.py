"""Out-of-scope scores: how far a query lies from what the model was trained on (higher: further out).

- ``max_softmax``: 1 - the top softmax probability (Hendrycks and Gimpel 2017);
- ``energy``: ``-logsumexp`` of the intents' logits (Liu et al. 2020), from the same logits;
- ``mahalanobis``: the distance of the query's pooled features (what the linear head reads) to the nearest
  intent's mean, with one covariance shared by the intents, fitted on the training split (Lee et al. 2018;
  Podolskiy et al. 2021 for fine-tuned transformers). The covariance is Ledoit-Wolf shrunk, so that a few
  hundred training queries in 384 dimensions still give a usable one;
- ``energy+mahalanobis``: the sum of the two, each standardised by its mean and spread over in-scope
  validation queries: the logits and the features fail on different queries (measured in ``BENCHMARKS.md``);
- ``knn``: minus the cosine similarity of the query's pooled features to its k-th nearest labelled training
  query's (Sun et al. 2022, deep nearest neighbours): no assumption on the intents' shapes, so a query of an
  unseen intent of the same domain, near the known ones but between them, stands out. k is chosen on
  validation by AUROC among ``KNN_KS`` (at most the smallest intent's number of training queries). Asked for
  by name (``oos_score: knn``), not among ``auto``'s candidates.

What a feature score needs (the whitening matrix, the whitened intent means, the standardisation) is
``FeatureStats``, saved beside the model as ``oos_features.safetensors`` (with the training queries' vectors
only where the rule is ``knn``). The rule (``oos.py``) thresholds
the *confidence*, ``-score`` (the top probability itself for ``max_softmax``, as the rule always did).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill_cli.errors import DistillError

SCORES = ("max_softmax", "energy", "mahalanobis", "energy+mahalanobis", "knn")
# What ``oos_score: auto`` chooses among: ``knn`` is there to be asked for. On the one-domain open-set sets, where
# its AUROC made it the choice (7 runs of 12), it separated the unseen intents of the domain better on validation
# (6 of 7) but the accuracy with the rule rose on 3 and fell on 4 (BENCHMARKS.md, "A nearest-neighbour score").
AUTO_SCORES = ("max_softmax", "energy", "mahalanobis", "energy+mahalanobis")
FEATURE_SCORES = frozenset({"mahalanobis", "energy+mahalanobis", "knn"})
STATS_FILE = "oos_features.safetensors"
KNN_KS = (1, 5, 10, 20)  # the k tried on validation for ``knn``
KNN_DEFAULT_K = 10  # where there is nothing to choose k on (``oos_score: knn`` with the fallback)


def max_softmax_score(logits: np.ndarray) -> np.ndarray:
    """1 - the top softmax probability."""
    z = logits - logits.max(-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return 1.0 - probs.max(-1)


def energy_score(logits: np.ndarray) -> np.ndarray:
    """The energy ``-logsumexp(logits)``: free, from the same logits, often better apart."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(-1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(-1)))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """The area under the ROC curve of ``scores`` for telling the ``positive`` rows apart (the Mann-Whitney
    statistic, ties counted half); None without both kinds of rows."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class FeatureStats:
    """The intents' feature statistics: ``whitening`` (d×d, the Cholesky factor of the shared precision
    matrix, so that Mahalanobis distances are Euclidean ones after ``features @ whitening``), the whitened
    intent ``means`` (C×d), and ``standardize`` (2×2: mean and spread of the energy and of the distance on
    in-scope validation queries; ones and zeros until ``calibrate``); for ``knn``, the L2-normalised
    features of the labelled training queries (``bank``, n×d) and ``k``."""

    whitening: np.ndarray
    means: np.ndarray
    standardize: np.ndarray
    bank: np.ndarray | None = None
    k: int = KNN_DEFAULT_K
    smallest: int | None = None  # the fewest training queries of an intent: the largest k worth trying

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray) -> FeatureStats:
        """Class means and one shrunk covariance of ``features`` (rows labelled by intent id), and the rows
        themselves, normalised, for ``knn``."""
        from sklearn.covariance import LedoitWolf

        x, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
        intents, counts = np.unique(labels, return_counts=True)
        means = np.stack([x[labels == c].mean(0) for c in intents])
        index = np.searchsorted(intents, labels)
        precision = LedoitWolf(assume_centered=True).fit(x - means[index]).precision_
        whitening = np.linalg.cholesky((precision + precision.T) / 2)
        smallest = int(counts.min())
        bank = normalised(x).astype(np.float16).astype(np.float32)  # as saved: the same scores once loaded
        return cls(whitening, means @ whitening, np.array([[0.0, 1.0], [0.0, 1.0]]), bank,
                   min(KNN_DEFAULT_K, smallest), smallest)  # fmt: skip

    def gives(self, name: str) -> bool:
        """Whether these statistics give the feature score ``name`` (``knn`` only where the vectors were kept)."""
        return name in FEATURE_SCORES and (name != "knn" or self.bank is not None)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """The squared Mahalanobis distance of each row to the nearest intent mean."""
        z = np.asarray(features, dtype=np.float64) @ self.whitening
        d = (z**2).sum(1)[:, None] - 2 * z @ self.means.T + (self.means**2).sum(1)[None, :]
        return np.maximum(d.min(1), 0.0)

    def neighbours(self, features: np.ndarray, depth: int) -> np.ndarray:
        """The cosine similarities of each row to its ``depth`` nearest training queries, nearest first
        (n×depth), a block of rows at a time."""
        if self.bank is None:
            raise ValueError("the knn score needs the training queries' vectors, which this model did not keep")
        z, depth, out = normalised(features), min(depth, len(self.bank)), []
        for start in range(0, len(z), 1024):
            sims = z[start : start + 1024] @ self.bank.T
            top = -np.partition(-sims, depth - 1, axis=1)[:, :depth]
            out.append(-np.sort(-top, axis=1))
        return np.concatenate(out) if out else np.zeros((0, depth))

    def choose_k(self, features: np.ndarray, positive: np.ndarray) -> dict[int, float]:
        """``k`` set to the one of ``KNN_KS`` (at most the smallest intent's count) whose ``knn`` score tells
        the ``positive`` (out-of-scope) rows of ``features`` apart best (AUROC; ties: the smaller k); each k's
        AUROC."""
        ks = [k for k in KNN_KS if k <= (self.smallest or len(self.bank))] or [1]
        near = self.neighbours(features, max(ks))
        aurocs = {k: auroc(-near[:, k - 1], positive) or 0.0 for k in ks}
        self.k = max(ks, key=lambda k: (aurocs[k], -k))
        return aurocs

    def knn(self, features: np.ndarray) -> np.ndarray:
        """Minus the cosine similarity of each row to its k-th nearest training query."""
        return -self.neighbours(features, self.k)[:, -1]

    def calibrate(self, logits: np.ndarray, features: np.ndarray) -> None:
        """Standardise the energy and the distance by their mean and spread over these (in-scope) queries."""
        for row, values in enumerate((energy_score(logits), self.distance(features))):
            self.standardize[row] = (values.mean(), max(values.std(), 1e-12))

    def save(self, folder: Path) -> None:
        """The statistics, and the training queries' vectors (float16) where ``bank`` is kept."""
        from safetensors.numpy import save_file

        from distill_cli.files import atomic_file

        tensors = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float64) for k in ("whitening", "means")}
        tensors["standardize"] = self.standardize.astype(np.float64)
        if self.bank is not None:
            tensors["bank"] = np.ascontiguousarray(self.bank, dtype=np.float16)
            tensors["knn_k"] = np.array([self.k], dtype=np.int64)
        with atomic_file(Path(folder) / STATS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "distill-oos-features", "version": "1"})

    @classmethod
    def load(cls, folder: Path, feature_dim: int | None = None) -> FeatureStats:
        """The statistics saved in ``folder``, checked: a missing, damaged or mismatched file is one line."""
        from safetensors.numpy import load_file

        path = Path(folder) / STATS_FILE
        if not path.is_file():
            raise DistillError(f"{path} is missing: the model's out-of-scope rule needs it (train the run again)")
        try:
            t = load_file(str(path))
            stats = cls(t["whitening"], t["means"], t["standardize"])
        except Exception as err:  # safetensors raises its own errors for a truncated header, KeyError for a key
            raise DistillError(f"{path} is damaged ({type(err).__name__}): train the run again") from None
        d = stats.whitening.shape[0] if stats.whitening.ndim == 2 else -1
        shapes_ok = stats.whitening.shape == (d, d) and stats.means.ndim == 2 and stats.means.shape[1] == d
        if "bank" in t:
            stats.bank, k = t["bank"].astype(np.float32), t.get("knn_k", np.zeros(0))
            stats.k = int(k[0]) if k.shape == (1,) else 0
            shapes_ok &= stats.bank.ndim == 2 and stats.bank.shape[1] == d and 1 <= stats.k <= len(stats.bank)
        if not shapes_ok or stats.standardize.shape != (2, 2) or (feature_dim is not None and d != feature_dim):
            raise DistillError(f"{path} does not fit this model's features (shape {stats.whitening.shape})")
        arrays = ("whitening", "means", "standardize") + (("bank",) if stats.bank is not None else ())
        if not all(np.isfinite(getattr(stats, k)).all() for k in arrays):
            raise DistillError(f"{path} holds values that are not finite: train the run again")
        return stats


def normalised(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; a zero row stays zero)."""
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def out_of_scope_score(
    name: str, logits: np.ndarray, features: np.ndarray | None = None, stats: FeatureStats | None = None
) -> np.ndarray:
    """Score ``name`` of each row (higher: further out of scope), from the intents' logits and, for a
    feature score, the pooled features and their statistics."""
    if name == "max_softmax":
        return max_softmax_score(logits)
    if name == "energy":
        return energy_score(logits)
    if features is None or stats is None:
        raise ValueError(f"the {name} score needs the pooled features and their statistics")
    if name == "knn":
        return stats.knn(features)
    distance = stats.distance(features)
    if name == "mahalanobis":
        return distance
    (e_mean, e_std), (d_mean, d_std) = stats.standardize
    return (energy_score(logits) - e_mean) / e_std + (distance - d_mean) / d_std
