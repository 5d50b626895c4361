"""``distill predict``: the intent of each text, its probability, and the out-of-scope decision.

A run's out-of-scope rule (chosen on validation, in ``run.json``) decides; a model without one answers
out of scope when its top intent is the out-of-scope label.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill_cli import inference, modeling
from distill_cli.config import Config
from distill_cli.errors import UsageError
from distill_cli.oos import OOSRule, softmax
from distill_cli.runs import oos_rule_of


@dataclass
class Predictor:
    model: object
    tokenizer: object
    labels: list[str]
    rule: OOSRule | None
    oos_label: str
    max_length: int

    @classmethod
    def load(cls, cfg: Config, spec: str) -> Predictor:
        ref = modeling.resolve_model(spec, cfg)
        model, labels = modeling.load_classifier_for_inference(ref, cfg)
        rule = oos_rule_of(ref.run_dir)
        oos_label = rule.oos_label if rule is not None else cfg.oos_label
        return cls(model, modeling.load_tokenizer(ref, cfg), labels, rule, oos_label, cfg.max_length)

    def __call__(self, texts: list[str], top_k: int = 1) -> list[dict]:
        probs = softmax(inference.batched_logits(self.model, self.tokenizer, texts, self.max_length))
        return [self.answer(text, p, top_k) for text, p in zip(texts, probs)]

    def answer(self, text: str, probs: np.ndarray, top_k: int) -> dict:
        best = np.argsort(-probs, kind="stable")[:top_k]
        intent, probability = self.labels[best[0]], float(probs[best[0]])
        below = self.rule is not None and probability < self.rule.threshold
        return {
            "text": text,
            "intent": self.oos_label if below else intent,
            "probability": round(probability, 4),
            "out_of_scope": below or intent == self.oos_label,
            "rule": None if self.rule is None else describe_rule(self.rule),
            "top_k": [{"intent": self.labels[j], "probability": round(float(probs[j]), 4)} for j in best],
        }


def describe_rule(rule: OOSRule) -> str:
    text = f"top probability < {rule.threshold:.2f}"
    if rule.is_fallback:
        text += f" (the fallback: {rule.reject_share:.0%} of in-scope validation queries fall below it)"
    return text


def read_texts(texts: list[str], file: Path | None) -> list[str]:
    """Texts from the arguments, else from ``--file`` (``-``: stdin), else from stdin; one per line."""
    if texts and file is not None:
        raise UsageError("pass texts as arguments or with --file, not both")
    if not texts:
        if file is not None and str(file) != "-":
            if not file.is_file():
                raise UsageError(f"--file {file}: no such file")
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise UsageError(f"--file {file} is not a UTF-8 text file") from None
        elif file is None and sys.stdin.isatty():
            raise UsageError("no text: pass texts as arguments, --file F, or pipe them on stdin (one per line)")
        else:
            lines = sys.stdin.read().splitlines()
        texts = [line for line in lines if line.strip()]
    if not texts:
        raise UsageError("no text to classify: the input has no non-empty line")
    return texts


def render(answers: list[dict], json_lines: bool = False) -> None:
    """A table for people on stderr, or (``json_lines``) one JSON object a text on stdout."""
    from rich.table import Table

    from distill_cli.ui import console, emit_json

    if json_lines:
        for answer in answers:
            emit_json(answer)
        return

    table = Table(title_justify="left")
    for col in ("text", "intent", "probability", "out of scope", "top k"):
        table.add_column(col, justify="right" if col == "probability" else "left")
    for a in answers:
        top = ", ".join(f"{t['intent']} {t['probability']:.2f}" for t in a["top_k"][1:])
        table.add_row(a["text"], a["intent"], f"{a['probability']:.3f}", "yes" if a["out_of_scope"] else "no", top)
    console.print(table)
