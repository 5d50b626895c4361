"""``distill predict``: the intent of each text, its probability, and the out-of-scope decision.

A run's out-of-scope rule (chosen on validation, in ``run.json``, with its score's statistics beside it)
decides; a model without one answers out of scope when its top intent is the out-of-scope label.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill_cli import inference, modeling
from distill_cli.config import Config
from distill_cli.errors import UsageError
from distill_cli.oos import OOSRule, softmax
from distill_cli.oos_scores import FeatureStats
from distill_cli.served import load_served


@dataclass
class Predictor:
    model: object
    tokenizer: object
    labels: list[str]
    rule: OOSRule | None
    oos_label: str
    max_length: int
    stats: FeatureStats | None = None  # what the rule's feature score reads, saved with the run

    @classmethod
    def load(cls, cfg: Config, spec: str) -> Predictor:
        m = load_served(cfg, modeling.resolve_model(spec, cfg))
        oos_label = m.rule.oos_label if m.rule is not None else cfg.oos_label
        return cls(m.model, m.tokenizer, m.labels, m.rule, oos_label, cfg.max_length, m.stats)

    def __call__(self, texts: list[str], top_k: int = 1) -> list[dict]:
        needs_features = self.rule is not None and self.rule.needs_features
        logits, features = inference.batched_outputs(
            self.model, self.tokenizer, texts, self.max_length, features=needs_features
        )
        probs = softmax(logits)
        conf = [None] * len(texts)
        if self.rule is not None:
            intents = self.rule.intents(self.labels)
            conf = self.rule.confidence(logits, features, self.stats, intents).tolist()
        return [self.answer(text, p, c, top_k) for text, p, c in zip(texts, probs, conf)]

    def answer(self, text: str, probs: np.ndarray, conf: float | None, top_k: int) -> dict:
        """One text's answer; ``conf`` is the rule's confidence (None without a rule)."""
        best = np.argsort(-probs, kind="stable")[:top_k]
        intent, probability = self.labels[best[0]], float(probs[best[0]])
        below = conf is not None and conf < self.rule.threshold
        return {
            "text": text,
            "intent": self.oos_label if below else intent,
            "probability": round(probability, 4),
            "out_of_scope": below or intent == self.oos_label,
            "confidence": conf,  # what the rule compares with its threshold
            "rule": None if self.rule is None else self.rule.describe(),
            "top_k": [{"intent": self.labels[j], "probability": round(float(probs[j]), 4)} for j in best],
        }


BATCH_LINES = 32  # a batch of a stream closes at this many lines,
BATCH_WAIT_S = 0.05  # or when no line has come for this long: a live pipe is answered as it goes


def text_source(texts: list[str], file: Path | None) -> list[str] | Callable[[], Iterator[str]]:
    """The texts of the arguments, or a function that streams the lines of ``--file`` (``-``: stdin), else of
    stdin. What can be checked before a model is loaded is checked here."""
    if texts and file is not None:
        raise UsageError("pass texts as arguments or with --file, not both")
    if texts:
        return texts
    if file is not None and str(file) != "-":
        if not file.is_file():
            raise UsageError(f"--file {file}: no such file")
        if not any(line.strip() for line in lines_of(file.open("rb"), f"--file {file}")):
            raise UsageError("no text to classify: the input has no non-empty line")
        return lambda: lines_of(file.open("rb"), f"--file {file}")
    if file is None and sys.stdin.isatty():
        raise UsageError("no text: pass texts as arguments, --file F, or pipe them on stdin (one per line)")
    return lambda: lines_of(getattr(sys.stdin, "buffer", sys.stdin), "stdin")


def lines_of(stream, name: str) -> Iterator[str]:
    """The non-empty lines of ``stream`` as they come (bytes are read as UTF-8; a line that is not is one
    error naming it)."""
    with stream:
        for number, raw in enumerate(stream, 1):
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise UsageError(f"{name}, line {number}: not UTF-8 text") from None
            line = raw.rstrip("\r\n")
            if line.strip():
                yield line


def batches(lines: Iterator[str], size: int = BATCH_LINES, wait_s: float = BATCH_WAIT_S) -> Iterator[list[str]]:
    """``lines`` in batches: a batch closes at ``size`` lines, or ``wait_s`` after its last line when no next
    one has come. A thread reads, so that a pipe that stays open is answered without waiting for its end."""
    found: queue.Queue = queue.Queue(maxsize=4 * size)  # bounded: a fast producer waits for the model
    end = object()

    def read() -> None:
        try:
            for line in lines:
                found.put(line)
            found.put(end)
        except BaseException as err:  # handed to the main thread, which says it
            found.put(err)

    threading.Thread(target=read, daemon=True).start()
    batch: list[str] = []
    while True:
        try:
            item = found.get(timeout=wait_s) if batch else found.get()
        except queue.Empty:
            yield batch
            batch = []
            continue
        if item is end or isinstance(item, BaseException):
            if batch:
                yield batch
            if isinstance(item, BaseException):
                raise item
            return
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []


def answer_all(predictor: Predictor, source, top_k: int, json_lines: bool) -> int:
    """Answer each batch of ``source`` (``text_source``) as it closes; returns how many texts were answered."""
    answered = 0
    for batch in [source] if isinstance(source, list) else batches(source()):
        render(predictor(batch, top_k), json_lines)
        answered += len(batch)
    if not answered:
        raise UsageError("no text to classify: the input has no non-empty line")
    return answered


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
