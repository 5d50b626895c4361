"""The typed records one command writes into a model folder and another reads: ``export.json``
(``ExportRecord``, by ``export``) and ``eval_results.json`` (``EvalResults``, by ``evaluate``), beside
``run.json`` (``runs.RunRecord``) and ``manifest.json`` (``data.manifest.Manifest``). Each has its file
name, ``read`` and ``write``; no other module reads these files. ``public()`` is the copy ``push``
uploads: every local path becomes the name a user knows it by. Imports nothing heavy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from distill_cli.files import atomic_file


def public_name(value: str) -> str:
    """A local path as the name a user knows it by (``/home/me/data/plus.json`` -> ``plus.json``); anything
    else (a Hub id ``owner/name``, a run name, a built-in alias) as it is."""
    path = Path(value).expanduser()
    looks_local = path.is_absolute() or value.startswith(("~", "./", "../")) or value.count("/") > 1
    return path.name if looks_local or ("/" in value and path.exists()) else value


def public_json(data):
    """A copy of a JSON value fit to publish: every local path becomes a name (``public_name``); labels are
    the user's own words and stay as they are."""
    if isinstance(data, dict):
        return {k: v if k in ("labels", "oos_label") else public_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [public_json(v) for v in data]
    return public_name(data) if isinstance(data, str) else data


class Record(BaseModel):
    """A JSON record in a model folder: ``FILE`` is its name there."""

    FILE: ClassVar[str]
    SPARSE: ClassVar[bool] = False  # write only the keys that were given (a report's own), not every default

    def write(self, folder: Path) -> None:
        with atomic_file(folder / self.FILE) as tmp:
            tmp.write_text(self.model_dump_json(indent=2, exclude_unset=self.SPARSE))

    @classmethod
    def read(cls, folder: Path | None):
        """The record in ``folder``; None when there is no folder or no such file."""
        path = folder / cls.FILE if folder is not None else None
        return cls.model_validate_json(path.read_text()) if path is not None and path.is_file() else None

    def public(self) -> bytes:
        """The copy ``push`` uploads: no local path."""
        return json.dumps(public_json(self.model_dump(mode="json", exclude_unset=self.SPARSE)), indent=2).encode()


class ExportRecord(Record):
    """``export.json``: the parent, the export's settings, the labels in output order and the checks. It also
    marks a folder as one ``export`` wrote (and may replace with ``--overwrite``)."""

    FILE: ClassVar[str] = "export.json"

    parent: str
    format: str
    quantize: str
    trim_vocab: bool
    opset: int | None = None
    size_mb: float
    checks: dict[str, Any] = {}
    labels: list[str] | None = None  # None in folders exported before labels were recorded


class ConfusedWith(BaseModel):
    intent: str
    count: int


class IntentRow(BaseModel):
    """One intent's results (``metrics.per_intent``), and the intents its queries were most often taken for."""

    intent: str
    precision: float
    recall: float
    f1: float
    support: int
    confused_with: list[ConfusedWith] = []


class Confusion(BaseModel):
    """The confusion matrix of the most-confused intents: rows the true intent, columns the answer."""

    intents: list[str] = []
    matrix: list[list[int]] = []


class ScoreHistogram(BaseModel):
    """How the rule's confidence spreads over in-scope and out-of-scope queries: counts per bin."""

    score: str | None = None
    edges: list[float]
    in_scope: list[int]
    oos: list[int]


class Separation(BaseModel):
    """How well one out-of-scope score sets out-of-scope queries apart (``metrics.separation``)."""

    auroc: float | None = None
    fpr_at_95_tpr: float | None = None
    in_scope_accuracy_at_95_tpr: float | None = None
    oos_recall_at_95_in_scope_accuracy: float | None = None

    def metric(self, key: str) -> float | None:
        return getattr(self, key, None)


class IntentLoss(BaseModel):
    """An intent's accuracy against the first model's (``evaluate.intent_losses``)."""

    intent: str
    queries: int
    reference_accuracy: float
    accuracy: float
    lost_pt: float


class RuleResult(BaseModel):
    """A model's metrics with its out-of-scope rule, the rule, and the share of in-scope queries it turned away."""

    model_config = ConfigDict(extra="allow")

    score: str
    threshold: float
    oos_share: float | None = None
    reject_share: float | None = None
    accuracy: float
    macro_f1: float | None = None
    in_scope_accuracy: float | None = None
    oos_recall: float | None = None
    in_scope_rejected: float | None = None
    validation_curve: list[tuple[float, float, float]] = []

    def metric(self, key: str) -> float | None:
        return getattr(self, key, None)


class ModelResult(BaseModel):
    """One model's measurements in ``evaluate``'s report."""

    model_config = ConfigDict(extra="allow")

    model: str
    path: str
    accuracy: float
    macro_f1: float | None = None
    in_scope_accuracy: float | None = None
    oos_recall: float | None = None
    latency_ms_mean: float
    latency_ms_median: float | None = None  # None in results written before the median was kept
    latency_ms_std: float = 0.0
    latency_ms_p95: float | None = None
    throughput_qps: float | None = None
    size_mb: float | None = None
    parameters: int | None = None
    oos_rule: RuleResult | None = None
    agreement: float | None = None
    # the error analysis, in the order the report has always written them
    per_intent: list[IntentRow] = []
    confusion: Confusion | None = None
    score_histogram: ScoreHistogram | None = None
    separation: dict[str, Separation] | None = None
    extra_metrics: dict[str, Any] | None = None
    intent_losses: list[IntentLoss] | None = None  # every model after the first: against the first

    def metric(self, key: str) -> float | None:
        return getattr(self, key, None)

    def rule_metric(self, key: str) -> float | None:
        """A metric with the model's out-of-scope rule; None without one."""
        return None if self.oos_rule is None else self.oos_rule.metric(key)

    def separation_metric(self, score: str, key: str) -> float | None:
        found = (self.separation or {}).get(score)
        return None if found is None else found.metric(key)


class EvalReport(BaseModel):
    """What ``evaluate`` measured: every model side by side, on one split of one dataset. The command's
    ``--json`` output, the table, the gates and the HTML report read it."""

    model_config = ConfigDict(extra="allow")

    split: str
    dataset: str
    examples: int
    threads: int
    latency_runs: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    models: list[ModelResult]
    result: ModelResult | None = None  # in a model folder's eval_results.json: that model's own
    data_checks: list[dict[str, Any]] = []  # prepare's findings, with example queries: kept on this machine

    def json_dict(self) -> dict:
        """As ``--json`` prints it and ``--output`` writes it."""
        return self.model_dump(mode="json", exclude_unset=True)


class EvalResults(EvalReport, Record):
    """``eval_results.json``: the whole comparison ``evaluate`` made, and this model's own result."""

    FILE: ClassVar[str] = "eval_results.json"
    SPARSE: ClassVar[bool] = True

    def public(self) -> bytes:
        """The copy ``push`` uploads: no local path, and no example of the user's data (the data checks)."""
        data = self.model_dump(mode="json", exclude_unset=True, exclude={"data_checks"})
        return json.dumps(public_json(data), indent=2).encode()


class StepRecord(BaseModel):
    """One step of ``distill run``: what it did, with which settings (their digest), in how long."""

    status: str  # "done" (ran now), "reused" (an earlier call's result), "given" (the user's own teacher run)
    fingerprint: str  # digest of the step's settings and of those of the steps it reads from
    seconds: float
    output: str | None = None


class RunSummary(Record):
    """``summary.json`` of a ``distill run`` folder: every step, the outputs, the headline metrics. It also
    marks the folder as one ``distill run`` made (and may write into again)."""

    FILE: ClassVar[str] = "summary.json"

    dataset: str
    teacher: str  # what the teacher was fine-tuned from, or the trained run it is
    student: str
    steps: dict[str, StepRecord] = {}
    data: dict[str, Any] | None = None  # prepare's findings: splits, labels, queries an intent, validation
    split: str | None = None  # the split evaluate measured on
    metrics: dict[str, dict[str, Any]] = {}  # teacher, student, export -> evaluate's headline figures
    report: str | None = None  # the HTML report, where matplotlib is installed
    pushed: str | None = None  # the Hub URL of the student, once pushed
