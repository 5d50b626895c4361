"""A teacher that is a file (``--teacher-labels F``): labels made by anything outside the tool (a hosted LLM,
a vendor's API, an ensemble, people voting), to distill into the student as a teacher's logits are.

The file is JSON lines, CSV, JSON or Parquet, one row a query: a text column (as a dataset's) and one of
  - ``label`` (or ``intent``): one label a row, a hard target;
  - ``probs`` (or ``probabilities``): a probability per label, an object ``{"label": p}`` (in a CSV cell, as
    JSON); labels it leaves out have 0; they sum to 1 (±1e-3);
  - ``logits``: a logit per label, an object naming every label of the run.
Texts are matched to the training rows (labelled and transfer-set rows) as transfer sets are matched: by the
digest of the normalised text (``transfer.digest``). A row the file does not cover keeps its label alone
(cross-entropy, no distillation term): the run counts them. Every problem is one line naming the row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distill_cli.data.sources import LABEL_COLUMNS, read_source
from distill_cli.data.transfer import check_transfer_file, digest, text_column_of
from distill_cli.errors import UsageError

FLAG = "--teacher-labels"
KINDS = {"label": "label", "intent": "label", "probs": "probs", "probabilities": "probs", "logits": "logits"}
SUM_TOLERANCE = 1e-3
FLOOR = 1e-8  # the probability a hard or a zero target gets, as a logit: log(1e-8) = -18.4


@dataclass
class SoftLabels:
    """The file's targets as logits over the run's labels, by the digest of each normalised text."""

    path: str
    kind: str  # label, probs or logits
    logits: dict[bytes, np.ndarray]

    def for_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Logits for ``texts`` in their order (a row of NaN where the file has no target) and how many
        the file covered."""
        width = len(next(iter(self.logits.values())))
        out = np.full((len(texts), width), np.nan, dtype=np.float32)
        covered = 0
        for i, text in enumerate(texts):
            found = self.logits.get(digest(text))
            if found is not None:
                out[i], covered = found, covered + 1
        return out, covered


def check_file(spec: str | None) -> None:
    """Before any compute: the file is there and is a table."""
    check_transfer_file(spec, FLAG, text_lines=False)


def read_soft_labels(spec: str, labels: list[str], text_column: str | None = None) -> SoftLabels:
    """The file's targets over ``labels`` (the run's, in output order); one line naming the first bad row."""
    check_file(spec)
    table = read_source(spec).splits.get("train", {})
    text_col = text_column_of(table, text_column, FLAG, spec)
    found = [c for c in table if c in KINDS and (c not in LABEL_COLUMNS or c in ("label", "intent"))]
    if len(found) != 1:
        has = f"it has {', '.join(found)}" if found else f"its columns: {', '.join(table)}"
        raise UsageError(f"{FLAG} {spec}: expected one column of label, probs or logits ({has})")
    column, kind = found[0], KINDS[found[0]]
    index = {name: i for i, name in enumerate(labels)}
    logits: dict[bytes, np.ndarray] = {}
    first_row: dict[bytes, int] = {}
    for row, (text, value) in enumerate(zip(table[text_col], table[column]), 1):
        where = f"{FLAG} {spec} row {row}"
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{where}: no text")
        target = row_logits(value, kind, index, where)
        key = digest(text)
        if key in logits and not np.allclose(logits[key], target, atol=1e-6):
            raise UsageError(f"{where}: the text of row {first_row[key]} again, with another target")
        logits[key], first_row[key] = target, first_row.get(key, row)
    if not logits:
        raise UsageError(f"{FLAG} {spec} holds no rows")
    return SoftLabels(spec, kind, logits)


def row_logits(value, kind: str, index: dict[str, int], where: str) -> np.ndarray:
    """One row's target as logits over the run's labels."""
    if kind == "label":
        if not isinstance(value, str) or value not in index:
            raise UsageError(f"{where}: label {value!r} is not one of the run's labels")
        probs = np.zeros(len(index))
        probs[index[value]] = 1.0
        return np.log(np.maximum(probs, FLOOR)).astype(np.float32)
    mapping = parsed(value, where)
    unknown = [k for k in mapping if k not in index]
    if unknown:
        raise UsageError(f"{where}: label {unknown[0]!r} is not one of the run's labels")
    numbers = {k: number(v, f"{where}: {kind}[{k!r}]") for k, v in mapping.items()}
    if kind == "logits":
        missing = [name for name in index if name not in numbers]
        if missing:
            raise UsageError(f"{where}: no logit for label {missing[0]!r} (logits name every label)")
        return np.array([numbers[name] for name in index], dtype=np.float32)
    if any(p < 0 for p in numbers.values()) or abs(sum(numbers.values()) - 1.0) > SUM_TOLERANCE:
        total = sum(numbers.values())
        raise UsageError(f"{where}: probabilities must be ≥ 0 and sum to 1 (±{SUM_TOLERANCE}), they sum to {total:.6g}")
    probs = np.array([numbers.get(name, 0.0) for name in index])
    return np.log(np.maximum(probs, FLOOR)).astype(np.float32)


def parsed(value, where: str) -> dict:
    """A mapping label -> number: as read (JSON lines, Parquet) or JSON text (a CSV cell)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise UsageError(f"{where}: expected a JSON object of label to number, got {value[:40]!r}") from None
    if not isinstance(value, dict) or not value:
        raise UsageError(f"{where}: expected an object of label to number, got {type(value).__name__}")
    return value


def number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: expected a finite number, got {value!r}")
    return float(value)
