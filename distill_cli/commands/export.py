"""``distill export``: a self-contained ONNX folder (optionally int8), checked against its PyTorch parent.

The graph is traced with ``torch.onnx.export(dynamo=False)`` (the dynamo exporter's graphs need their
``value_info`` cleared before ONNX Runtime's quantizer accepts them), with dynamic batch and sequence
axes; the pooling, mean or [CLS], is inside it. ``--quantize int8`` applies ONNX Runtime's dynamic
quantization (int8 weights with a scale per output channel, activations quantized on the fly). Parity is
checked on validation queries: fp32 logits against PyTorch's (max abs difference, argmax agreement), and
for int8 the validation accuracy of the int8 graph against the fp32 one; ``--max-accuracy-drop`` turns
the latter into a gate. The graph also outputs the pooled features, and the run's out-of-scope statistics
go with it: each graph's out-of-scope decisions under the run's rule are compared with PyTorch's.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill_cli import inference, modeling
from distill_cli.config import DEFAULT_MAX_ACCURACY_DROP, Config
from distill_cli.data.prepared import split_texts
from distill_cli.data.transfer import read_transfer_set
from distill_cli.errors import DistillError, UsageError
from distill_cli.extras import require
from distill_cli.files import atomic_folder, check_replaceable
from distill_cli.onnx_model import ONNX_FILE, OnnxClassifier, is_onnx_folder
from distill_cli.records import ExportRecord
from distill_cli.runs import RunRecord, config_with_run_dataset
from distill_cli.served import load_served
from distill_cli.training.trainer import MODEL_INPUTS
from distill_cli.ui import warn
from distill_cli.vocab import lost_tokens, trim
from distill_cli.weights import weights_size_mb

OPSET = 17


class LogitsAndFeatures(torch.nn.Module):
    """The model with positional inputs and two outputs, as the ONNX tracer wants it: the logits, and the
    pooled features the head reads (for the feature out-of-scope scores)."""

    def __init__(self, model, input_names: list[str]):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *inputs):
        return inference.classify_encoded(self.model, dict(zip(self.input_names, inputs)))


@dataclass
class TaskTexts:
    """The queries of the model's dataset that the export checks on."""

    train: list[str]
    validation: list[str]
    gold: list[int]  # validation labels, in the model's label order
    test: list[str]


def export(
    cfg: Config,
    spec: str,
    output: Path | None,
    fmt: str = "onnx",
    quantize: str = "none",
    trim_vocab: bool = False,
    overwrite: bool = False,
    max_accuracy_drop: float | None = DEFAULT_MAX_ACCURACY_DROP,
    trim_keep: Path | None = None,
) -> dict:
    """Export ``spec`` to ``output`` and return the export record (also in the folder's ``export.json``).
    Trimming keeps the tokens of the training split and, with ``trim_keep``, of the texts in that file."""
    if fmt == "torch" and quantize != "none":
        raise UsageError("--quantize int8 is for --format onnx")
    keep_texts = read_transfer_set(str(trim_keep), cfg.text_column, "--trim-keep") if trim_keep else []
    ref = modeling.resolve_model(spec, cfg)
    if modeling.is_static(ref):
        return copy_static(ref, spec, output or cfg.runs_dir / f"{Path(ref.location).name}-export", overwrite)
    if fmt == "onnx":
        require("onnxruntime")
    if ref.is_local and is_onnx_folder(Path(ref.location)):
        raise UsageError(f"{spec} is already an exported ONNX folder")
    name = Path(ref.location).name if ref.is_local else spec.split("/")[-1]
    output = output or cfg.runs_dir / f"{name}-{fmt}{'-int8' if quantize == 'int8' else ''}"
    check_output(output, overwrite)
    served = load_served(cfg, ref)
    tokenizer, model, labels = served.tokenizer, served.model, served.labels
    texts = task_texts(cfg, ref, tokenizer, labels)
    checks = {}
    if trim_vocab:
        model, tokenizer, checks["trim"] = trim_step(model, tokenizer, texts, cfg.max_length, keep_texts)
    with atomic_folder(output) as tmp:
        tmp.mkdir()
        tokenizer.save_pretrained(tmp)
        if fmt == "torch":
            model.save_pretrained(tmp)
        else:
            decide = served.turned_away if served.rule is not None else None
            checks.update(write_onnx(tmp, model, tokenizer, texts, quantize, cfg.max_length, decide))
        copy_feature_stats(ref, tmp)
        record = write_folder(tmp, ref, spec, fmt, quantize, trim_vocab, checks, labels)
        gate(checks, max_accuracy_drop)
    return {**record, "output": str(output)}


def copy_feature_stats(ref: modeling.ModelRef, folder: Path) -> None:
    """The out-of-scope score's statistics go with the export (the rule in ``run.json`` reads them)."""
    from distill_cli.oos_scores import STATS_FILE

    if ref.is_local and (Path(ref.location) / STATS_FILE).is_file():
        shutil.copy2(Path(ref.location) / STATS_FILE, folder / STATS_FILE)


def copy_static(ref: modeling.ModelRef, spec: str, output: Path, overwrite: bool) -> dict:
    """A static student is already its serving form (numpy, float16 vectors): the export is a copy, with the
    export record beside it, so that scripts that export every student work for this one too."""
    check_output(output, overwrite)
    warn(f"{spec} is a static model2vec pipeline: exported as it is (format, quantization and trimming do not apply)")
    with atomic_folder(output) as tmp:
        shutil.copytree(ref.location, tmp, ignore=shutil.ignore_patterns(ExportRecord.FILE))
        record = write_folder(tmp, ref, spec, "static", "none", False, {})
    return {**record, "output": str(output)}


def write_onnx(folder: Path, model, tokenizer, texts: TaskTexts, quantize: str, max_length: int, decide=None) -> dict:
    """The graph (fp32, then int8 if asked) and its checks. ``decide`` (logits, features) → out-of-scope
    decisions is the parent's rule, where it has one: each graph's decisions are compared with PyTorch's."""
    model.config.save_pretrained(folder)  # the labels, and what OnnxClassifier reads first
    input_names = [k for k in MODEL_INPUTS if k in tokenizer.model_input_names]
    trace(model, tokenizer, input_names, folder / ONNX_FILE)
    reference = Scored.of(model, tokenizer, texts.validation, texts.gold, max_length, decide)
    fp32 = Scored.of(OnnxClassifier(folder), tokenizer, texts.validation, texts.gold, max_length, decide)
    checks = {"fp32": parity(reference, fp32)}
    if quantize == "int8":
        checks["int8"] = quantize_int8(folder, tokenizer, texts, max_length, fp32, reference, decide)
    return checks


def trim_step(model, tokenizer, texts: TaskTexts, max_length: int, keep_texts: list[str]):
    """Trim the vocabulary to the training split's tokens and those of ``keep_texts`` (``vocab.py``);
    validation accuracy before and after, and the tokens lost."""
    before = accuracy(model, tokenizer, texts.validation, texts.gold, max_length)
    vocab_before, size_before = len(tokenizer.get_vocab()), weights_mb(model)
    model, trimmed, kept = trim(model, tokenizer, texts.train + keep_texts, max_length)
    after = accuracy(model, trimmed, texts.validation, texts.gold, max_length)
    check = {
        "vocabulary_before": vocab_before,
        "vocabulary_after": len(kept),
        "weights_mb_before": size_before,
        "weights_mb_after": weights_mb(model),
        "validation_accuracy_before": before,
        "validation_accuracy_after": after,
        "accuracy_drop_pt": round((before - after) * 100, 3),
        "kept_texts": len(keep_texts),  # besides the training split's
        "token_shares": {
            split: lost_tokens(tokenizer, trimmed, kept, queries, max_length)
            for split, queries in (("validation", texts.validation), ("test", texts.test))
            if queries
        },
    }
    return model, trimmed, check


def weights_mb(model) -> float:
    """fp32 megabytes of the model's parameters."""
    return round(sum(p.numel() for p in model.parameters()) * 4 / 1e6, 1)


def check_output(output: Path, overwrite: bool) -> None:
    """An existing folder is replaced only with ``--overwrite``, and only if this tool exported it."""
    check_replaceable(
        output,
        overwrite,
        lambda folder: (folder / ExportRecord.FILE).is_file(),
        taken=f"{output} already exists; pass --overwrite to replace it, or another --output",
        not_ours=f"{output} was not written by `distill export`; refusing to replace it",
    )


def task_texts(cfg: Config, ref: modeling.ModelRef, tokenizer, labels: list[str]) -> TaskTexts:
    """The model's dataset (its run's, or ``--dataset``), labels in the model's order."""
    cfg = config_with_run_dataset(cfg, ref.run_dir, "the export checks")
    splits = split_texts(cfg, tokenizer, ref.location, labels)  # a prepared folder is read, not prepared again
    validation, gold = splits["validation"]
    return TaskTexts(train=splits["train"][0], validation=validation, gold=gold, test=splits.get("test", ([],))[0])


def trace(model, tokenizer, input_names: list[str], path: Path) -> None:
    """Trace the model into ``path`` on a padded batch (so the attention mask is part of the graph)."""
    sample = tokenizer(["a short query", "a longer query with more words in it"], padding=True, return_tensors="pt")
    wrapper = LogitsAndFeatures(model, input_names).eval()  # a fresh module trains: dropout would be traced
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python control flow on shapes, all benign here
        torch.onnx.export(
            wrapper,
            tuple(sample[n] for n in input_names),
            str(path),
            input_names=input_names,
            output_names=["logits", "features"],
            dynamic_axes={**axes, "logits": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model.eval()  # the exporter restores the wrapper's training flag on the model too


@dataclass
class Scored:
    """One model's outputs on the validation queries: its logits, accuracy, and out-of-scope decisions
    (under the parent's rule, where it has one)."""

    logits: np.ndarray
    accuracy: float
    oos: np.ndarray | None

    @classmethod
    def of(cls, model, tokenizer, texts: list[str], gold: list[int], max_length: int, decide=None) -> Scored:
        logits, features = inference.batched_outputs(model, tokenizer, texts, max_length, features=decide is not None)
        accuracy = float((logits.argmax(-1) == np.asarray(gold)).mean())
        return cls(logits, accuracy, decide(logits, features) if decide is not None else None)


def parity(reference: Scored, graph: Scored) -> dict:
    """PyTorch against the fp32 graph on the same queries."""
    return {
        "queries": len(reference.logits),
        "max_abs_logit_difference": float(np.abs(reference.logits - graph.logits).max()),
        "argmax_agreement": float((reference.logits.argmax(-1) == graph.logits.argmax(-1)).mean()),
        **oos_agreement(reference, graph),
    }


def oos_agreement(reference: Scored, graph: Scored) -> dict:
    """The share of queries on which the graph's out-of-scope decision is PyTorch's (empty without a rule)."""
    if reference.oos is None:
        return {}
    return {"oos_decision_agreement": float((reference.oos == graph.oos).mean())}


def quantize_int8(folder: Path, tokenizer, texts: TaskTexts, max_length: int, fp32: Scored, reference: Scored, decide):
    """Replace the fp32 graph with its int8 version; validation accuracy of both, and its out-of-scope
    decisions against PyTorch's."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantizer logs advice on the root logger
    fp32_file = folder / "model-fp32.onnx"
    (folder / ONNX_FILE).rename(fp32_file)
    try:
        # Per channel: one scale per output row of each weight matrix. On CLINC150 validation it kept the
        # 3-layer student within 0.05 pt of fp32, where one scale per matrix lost 0.4 pt (BENCHMARKS.md).
        quantize_dynamic(str(fp32_file), str(folder / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    fp32_file.unlink()
    int8 = Scored.of(OnnxClassifier(folder), tokenizer, texts.validation, texts.gold, max_length, decide)
    return {
        "queries": len(texts.validation),
        "fp32_accuracy": fp32.accuracy,
        "int8_accuracy": int8.accuracy,
        "accuracy_drop_pt": round((fp32.accuracy - int8.accuracy) * 100, 3),
        **oos_agreement(reference, int8),
    }


def accuracy(model, tokenizer, texts: list[str], gold: list[int], max_length: int) -> float:
    return Scored.of(model, tokenizer, texts, gold, max_length).accuracy


def write_folder(
    folder: Path, ref, spec: str, fmt: str, quantize: str, trim_vocab: bool, checks: dict, labels=None
) -> dict:
    """``export.json`` (the settings, the labels in output order and the checks; it marks the folder as this
    command's), and, when the parent is a run, its ``run.json`` with the same record under ``export`` (the
    out-of-scope rule goes along). Every command that loads the folder checks its labels against these."""
    parent = RunRecord.read(ref.run_dir)
    record = ExportRecord(
        parent=spec,
        format=fmt,
        quantize=quantize,
        trim_vocab=trim_vocab,
        opset=OPSET if fmt == "onnx" else None,
        size_mb=round(weights_size_mb(folder), 2),
        checks=checks,
        labels=labels if labels is not None else parent.labels if parent is not None else None,
    )
    record.write(folder)
    if parent is not None:
        parent.export = record
        parent.write(folder)
    return record.model_dump(mode="json")


def gate(checks: dict, max_accuracy_drop: float | None) -> None:
    """A wrong graph always fails; trimming or quantization that loses more than allowed fails the gate."""
    if "fp32" in checks and checks["fp32"]["argmax_agreement"] < 0.99:
        raise DistillError(
            f"the fp32 graph disagrees with PyTorch on {1 - checks['fp32']['argmax_agreement']:.1%} of the "
            "validation queries: the export is wrong"
        )
    agreement = checks.get("fp32", {}).get("oos_decision_agreement")
    if agreement is not None and agreement < 0.99:
        raise DistillError(
            f"the fp32 graph's out-of-scope decisions differ from PyTorch's on {1 - agreement:.1%} of the "
            "validation queries: the export is wrong"
        )
    for step in ("trim", "int8"):
        drop = checks.get(step, {}).get("accuracy_drop_pt")
        if max_accuracy_drop is not None and drop is not None and drop > max_accuracy_drop:
            raise DistillError(
                f"{'vocabulary trimming' if step == 'trim' else 'int8'} loses {drop:.2f} pt of validation accuracy "
                f"> --max-accuracy-drop {max_accuracy_drop}; nothing written (pass a larger --max-accuracy-drop "
                "to write it anyway)"
            )


def render(record: dict) -> None:
    from distill_cli.ui import info

    kind = f"{record['format']}, {'int8' if record['quantize'] == 'int8' else 'fp32'}"
    if record["format"] == "static":
        kind = "model2vec, float16 vectors"
    info(f"exported {record['parent']} → {record['output']} ({kind}, {record['size_mb']:.1f} MB)")
    if "trim" in record["checks"]:
        t = record["checks"]["trim"]
        shares = "; ".join(
            f"{split}: {v['not_in_vocabulary']:.2%} re-spelled, {v['became_unknown']:.2%} unknown"
            for split, v in t["token_shares"].items()
        )
        info(
            f"vocabulary {t['vocabulary_before']:,} → {t['vocabulary_after']:,} tokens, weights "
            f"{t['weights_mb_before']} → {t['weights_mb_after']} MB; validation accuracy "
            f"{t['validation_accuracy_before']:.4f} → {t['validation_accuracy_after']:.4f}; tokens {shares}"
        )
    if "fp32" in record["checks"]:
        fp32 = record["checks"]["fp32"]
        info(
            f"fp32 parity on {fp32['queries']} validation queries: max |Δlogit| "
            f"{fp32['max_abs_logit_difference']:.2e}, argmax agreement {fp32['argmax_agreement']:.2%}" + oos_note(fp32)
        )
    if "int8" in record["checks"]:
        q = record["checks"]["int8"]
        info(
            f"int8 validation accuracy {q['int8_accuracy']:.4f} against fp32 {q['fp32_accuracy']:.4f} "
            f"({-q['accuracy_drop_pt']:+.2f} pt, {q['queries']} queries)" + oos_note(q)
        )
        if q.get("oos_decision_agreement", 1.0) < 0.99:
            from distill_cli.ui import warn

            differ = 1 - q["oos_decision_agreement"]
            warn(f"the int8 graph's out-of-scope decisions differ from PyTorch's on {differ:.1%} of validation")


def oos_note(check: dict) -> str:
    agreement = check.get("oos_decision_agreement")
    return "" if agreement is None else f"; out-of-scope decisions as PyTorch's on {agreement:.2%}"
