"""``distill evaluate``: the book's performance benchmark, models side by side.

Every model is measured under the same conditions (same texts, same thread count) on three axes:
accuracy (and macro-F1, in-scope accuracy, out-of-scope recall), latency of one query on the CPU and
batched throughput, and size on disk. Each model reads the text with its own tokenizer, so one dataset
serves models with different vocabularies.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill_cli import inference, modeling, precision
from distill_cli.config import Config
from distill_cli.data.columns import check_labels
from distill_cli.data.prepared import load_for_training
from distill_cli.errors import UsageError
from distill_cli.extras import require
from distill_cli.files import atomic_file
from distill_cli.metrics import (
    classification_metrics,
    most_confused,
    per_intent,
    score_histogram,
    separation,
)
from distill_cli.oos import OOSRule, confidence
from distill_cli.oos_scores import FeatureStats
from distill_cli.records import EvalReport, EvalResults
from distill_cli.runs import config_with_run_dataset
from distill_cli.served import load_served
from distill_cli.ui import Bar
from distill_cli.weights import check_weights, weights_size_mb

WARMUP_RUNS = 10


def evaluation_data(cfg: Config, refs: list[modeling.ModelRef], split: str):
    """Texts and gold label names of ``split``. Without --dataset, the first run's own dataset."""
    cfg = config_with_run_dataset(cfg, refs[0].run_dir, "evaluate")
    tokenizer = modeling.data_tokenizer(refs[0], cfg)
    prepared = load_for_training(cfg, tokenizer, refs[0].location)
    if split not in prepared.datasets:
        raise UsageError(f"dataset {prepared.path} has no '{split}' split (splits: {', '.join(prepared.datasets)})")
    ds = prepared.datasets[split]
    names = prepared.label_names
    return list(ds["text"]), [names[i] for i in ds["label"]], prepared


@dataclass
class Candidate:
    """One model under evaluation: loaded, with the gold labels in its own label order."""

    ref: modeling.ModelRef
    model: object
    tokenizer: object
    labels: list[str]
    y_true: list[int]
    oos_id: int | None  # the gold out-of-scope label's id, when the data has it
    max_length: int
    rule: OOSRule | None = None  # the out-of-scope rule the run chose, when it applies to this data
    stats: FeatureStats | None = None  # the feature scores' statistics, where the run saved them

    @property
    def rule_id(self) -> int | None:
        """The id the rule answers (the out-of-scope label, an output of the model's or one past them)."""
        return self.labels.index(self.rule.oos_label) if self.rule is not None else None

    def intents(self, outputs: int) -> list[int]:
        """The model's outputs the scores read: all but its out-of-scope one."""
        return [i for i in range(outputs) if i != (self.rule_id if self.rule is not None else self.oos_id)]

    @classmethod
    def load(cls, cfg: Config, ref: modeling.ModelRef, gold: list[str]) -> Candidate:
        served = load_served(cfg, ref, every_stat=True)
        model, tokenizer, labels, rule, stats = served.model, served.tokenizer, served.labels, served.rule, served.stats
        if rule is not None and rule.oos_label not in labels:  # the fallback's answer, which has no output
            labels = [*labels, rule.oos_label]
        check_labels(set(gold), labels, f"model '{ref.spec}'")
        index = {n: i for i, n in enumerate(labels)}
        oos_id = index.get(cfg.oos_label) if cfg.oos_label in gold else None
        if rule is not None and oos_id is not None and labels[oos_id] != rule.oos_label:
            rule = None  # a rule for another label than the data's out-of-scope one
        return cls(ref, model, tokenizer, labels, [index[g] for g in gold], oos_id, cfg.max_length, rule, stats)

    def __call__(self, texts: list[str]):
        """One served answer: the logits and, where the rule needs them, the features and the rule's decision."""
        if self.rule is None or not self.rule.needs_features:
            return inference.classify(self.model, self.tokenizer, texts, self.max_length)
        logits, features = inference.classify(self.model, self.tokenizer, texts, self.max_length, features=True)
        logits = logits.numpy()
        return self.rule.apply(logits, self.rule_id, features.numpy(), self.stats, self.intents(logits.shape[1]))

    def answers(self, logits: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The model's answers: with its out-of-scope rule where it has one, else argmax."""
        if self.rule is None:
            return logits.argmax(-1)
        return self.rule.apply(logits, self.rule_id, features, self.stats, self.intents(logits.shape[1]))


def measure(
    candidates: list[Candidate], texts: list[str], latency_runs: int, batch_size: int, extra_metrics: dict,
    half: str = "fp32",
):  # fmt: skip
    """Every model's metrics; single-query latency is timed round-robin, so machine noise hits all alike.
    PyTorch models run under autocast to ``half`` (bf16) when asked."""
    results = []
    with torch.inference_mode(), precision.autocast(half):
        outputs = [predict_batched(c, texts, batch_size) for c in candidates]
        timings = time_interleaved(candidates, texts, latency_runs)
    for c, (logits, features, batched_s), ms in zip(candidates, outputs, timings):
        preds = logits.argmax(-1).tolist()
        result = {
            "model": c.ref.spec,
            "path": c.ref.location,
            **classification_metrics(c.y_true, preds, c.oos_id),
            "latency_ms_median": statistics.median(ms),
            "latency_ms_mean": statistics.fmean(ms),
            "latency_ms_std": statistics.stdev(ms) if len(ms) > 1 else 0.0,
            "latency_ms_p95": float(np.percentile(ms, 95)),
            "throughput_qps": len(texts) / batched_s,
            "size_mb": model_size_mb(c.ref, c.model),
            "parameters": inference.parameter_count(c.model),
            "predictions": [c.labels[i] for i in preds],
        }
        if c.rule is not None:
            result["oos_rule"] = with_oos_rule(c, logits, features)
        result.update(error_analysis(c, logits, features))
        if extra_metrics:
            result["extra_metrics"] = {
                name: metric.compute(predictions=preds, references=c.y_true) for name, metric in extra_metrics.items()
            }
        results.append(result)
    return results


def with_comparison(results: list[dict], gold: list[str]) -> list[dict]:
    """``results`` with the agreement of each model's predictions with the first model's, and the accuracy each
    intent lost against it (every intent, most lost first). The predictions themselves are dropped."""
    reference = results[0].pop("predictions")
    for result in results[1:]:
        preds = result.pop("predictions")
        result["agreement"] = float(np.mean([a == b for a, b in zip(preds, reference)]))
        result["intent_losses"] = intent_losses(gold, reference, preds)
    return results


def intent_losses(gold: list[str], reference: list[str], preds: list[str]) -> list[dict]:
    by_intent: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for g, r, p in zip(gold, reference, preds):
        by_intent[g].append((r == g, p == g))
    losses = []
    for intent, hits in by_intent.items():
        ref_acc, acc = (float(np.mean([h[k] for h in hits])) for k in (0, 1))
        lost = round((ref_acc - acc) * 100, 2)
        losses.append(
            {"intent": intent, "queries": len(hits), "reference_accuracy": ref_acc, "accuracy": acc, "lost_pt": lost}
        )
    return sorted(losses, key=lambda x: (-x["lost_pt"], x["intent"]))


def predict_batched(c: Candidate, texts: list[str], batch_size: int):
    """Logits for ``texts``, in batches, the pooled features where the run has feature statistics, and the
    seconds it took (for throughput)."""
    start = time.perf_counter()
    logits, features = inference.batched_outputs(
        c.model, c.tokenizer, texts, c.max_length, batch_size, f"evaluate {c.ref.spec}", c.stats is not None
    )
    return logits, features, time.perf_counter() - start


def time_interleaved(candidates: list[Candidate], texts: list[str], latency_runs: int) -> list[list[float]]:
    """Milliseconds for one query at a time, tokenization included, each query sent to every model in turn
    (the first model to go rotates), after ``WARMUP_RUNS`` untimed queries each."""
    for c in candidates:
        for query in texts[:WARMUP_RUNS]:
            c([query])
    timings: list[list[float]] = [[] for _ in candidates]
    with Bar("latency, round-robin", latency_runs) as bar:
        for run in range(latency_runs):
            query = texts[run % len(texts)]
            for k in range(len(candidates)):
                i = (run + k) % len(candidates)
                start = time.perf_counter()
                candidates[i]([query])
                timings[i].append((time.perf_counter() - start) * 1000)
            bar.advance()
    return timings


def error_analysis(c: Candidate, logits: np.ndarray, features: np.ndarray | None) -> dict:
    """Per-intent results and the most-confused intents, of the answers the model gives (with its
    out-of-scope rule, where it has one); with out-of-scope queries, how the rule's confidence spreads over
    in-scope and out-of-scope queries, and how well each score sets them apart (AUROC, FPR at 95% TPR)."""
    preds = c.answers(logits, features)
    out = {
        "per_intent": per_intent(c.y_true, preds, c.labels),
        "confusion": most_confused(c.y_true, preds, c.labels),
    }
    if c.oos_id is not None:
        score = c.rule.score if c.rule is not None else "max_softmax"
        conf = confidence(score, logits, features, c.stats, c.intents(logits.shape[1]))
        out["score_histogram"] = score_histogram(conf, c.y_true, c.oos_id, score)
        out["separation"] = separation(logits, c.y_true, c.oos_id, features, c.stats)
    return out


def with_oos_rule(c: Candidate, logits: np.ndarray, features: np.ndarray | None) -> dict:
    """The metrics with the out-of-scope rule the run chose on validation, and the share of in-scope queries
    it turned away."""
    rule = c.rule
    below = rule.confidence(logits, features, c.stats, c.intents(logits.shape[1])) < rule.threshold
    preds = c.answers(logits, features)
    in_scope = np.asarray(c.y_true) != (c.oos_id if c.oos_id is not None else -1)
    return {
        "score": rule.score,
        "threshold": rule.threshold,
        "oos_share": rule.oos_share,
        "reject_share": rule.reject_share,
        **classification_metrics(c.y_true, preds, c.oos_id),
        "in_scope_rejected": float(below[in_scope].mean()) if in_scope.any() else None,
        "validation_curve": rule.curve,
    }


def model_size_mb(ref: modeling.ModelRef, model) -> float:
    """Size of the weights on disk; a Hub model is saved to a temporary folder to measure it."""
    size = weights_size_mb(Path(ref.location)) if ref.is_local else None
    if size is None:
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            size = weights_size_mb(Path(tmp))
    return size


def load_metric(name: str):
    """An extra metric from the `evaluate` library: a Hub name, or a local metric script that works offline."""
    evaluate = require("evaluate")
    try:
        return evaluate.load(name)
    except Exception as err:  # evaluate raises FileNotFoundError for an unreachable Hub, among others
        raise UsageError(
            f"cannot load metric '{name}': {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            " (offline, pass the path of a local metric script)"
        ) from None


def evaluate_models(
    cfg: Config,
    specs: list[str],
    split: str = "test",
    threads: int | None = None,
    latency_runs: int = 100,
    batch_size: int = 32,
    extra_metrics: list[str] | None = None,
) -> EvalReport:
    """Measure every model on ``split``; results also go into each run folder's ``eval_results.json``."""
    if extra_metrics and not cfg.trust_remote_code:
        raise UsageError(
            "--metric runs the metric's own code (a local script, or one fetched from the Hub): "
            "pass --trust-remote-code to allow it"
        )
    refs = [modeling.resolve_model(s, cfg) for s in specs]  # every name checked before any compute
    for ref in refs:
        if ref.is_local:
            check_weights(Path(ref.location))
    half = "fp32" if cfg.precision == "auto" else cfg.precision  # evaluate runs on the CPU, where auto is fp32
    if half == "fp16":
        raise UsageError("precision fp16 needs a CUDA GPU and evaluate runs on the CPU: use bf16 or fp32")
    metrics = {name: load_metric(name) for name in extra_metrics or []}  # loaded once, for every model
    if threads:
        torch.set_num_threads(threads)
    texts, gold, prepared = evaluation_data(cfg, refs, split)
    candidates = [Candidate.load(cfg, ref, gold) for ref in refs]
    report = EvalReport.model_validate({
        "split": split,
        "dataset": prepared.manifest.source,
        "examples": len(texts),
        "threads": torch.get_num_threads(),
        "latency_runs": latency_runs,
        "batch_size": batch_size,
        "precision": half,
        "models": with_comparison(measure(candidates, texts, latency_runs, batch_size, metrics, half), gold),
        "data_checks": [c.model_dump() for c in prepared.manifest.checks],
    })  # fmt: skip
    for ref, result in zip(refs, report.models):
        if ref.run_dir is not None:
            EvalResults.model_validate({**report.json_dict(), "result": result.model_dump(exclude_unset=True)}).write(
                ref.run_dir
            )
    return report


def write_json(report: EvalReport, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report.json_dict(), indent=2))


def check_gates(
    report: EvalReport, min_accuracy: float | None, max_latency_ms: float | None, max_accuracy_drop: float | None
) -> list[str]:
    """One line per model that fails a quality gate, saying by how much."""
    failures = []
    first = report.models[0]
    for m in report.models:
        if min_accuracy is not None and m.accuracy < min_accuracy:
            failures.append(
                f"{m.model}: accuracy {m.accuracy:.4f} < --min-accuracy {min_accuracy} "
                f"(short by {(min_accuracy - m.accuracy) * 100:.1f} pt)"
            )
        # The median (the mean in results older than it): a burst of another job's work moves the mean of a
        # few slow runs, not the median.
        latency = m.latency_ms_median if m.latency_ms_median is not None else m.latency_ms_mean
        if max_latency_ms is not None and latency > max_latency_ms:
            failures.append(
                f"{m.model}: median latency {latency:.2f} ms > --max-latency-ms {max_latency_ms} "
                f"(over by {latency - max_latency_ms:.2f} ms)"
            )
        drop = (first.accuracy - m.accuracy) * 100
        if max_accuracy_drop is not None and m is not first and drop > max_accuracy_drop:
            failures.append(
                f"{m.model}: accuracy {drop:.1f} pt below {first.model} > --max-accuracy-drop "
                f"{max_accuracy_drop} (over by {drop - max_accuracy_drop:.1f} pt)"
            )
    return failures
