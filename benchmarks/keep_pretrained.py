"""Keep what the pretrained encoder knows: the tool's defaults (mean pooling read from the checkpoint, probe
then fine-tune, the out-of-scope rule) against the frozen-encoder probe a user would build instead.

On CLINC150 "plus" from ../shared, with the offline MiniLM-L6 encoder:
  1. the peers: the frozen encoder (6 layers, and its 3-layer cut) with mean pooling, L2-normalised as the
     checkpoint's own `2_Normalize` module does, and scikit-learn's `LogisticRegression()` (SetFit's head);
  2. `distill finetune --student minilm-l6` with no flags but the dataset (head_init probe), and the same
     with `--head-init random`: the default is whichever wins on validation;
  3. `distill distill` of a 3-layer student cut from that teacher, defaults again;
  4. all of them on test: argmax and with the out-of-scope rule each run chose on validation.

Runs that exist are reused; delete benchmarks/out/keep-pretrained to start over.
    python benchmarks/keep_pretrained.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import OUT, distill, frozen_minilm, machine, pct, require_clinc, save, train_once

RUNS = OUT / "keep-pretrained"
CACHE = OUT / "cache"


def train(command: str, name: str, *flags) -> dict:
    """The run's run.json, training it first unless it exists."""
    return train_once(command, RUNS, name, "--cache-dir", CACHE, *flags)


def frozen_probe(clinc: Path, layers: int | None) -> dict:
    """The peer, pinned: frozen MiniLM-L6 (optionally its first/middle/last layers), mean pooling, L2
    normalisation, scikit-learn LogisticRegression() with its defaults, trained on train (oos included)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source
    from distill_cli.metrics import classification_metrics

    encode = frozen_minilm(layers)
    splits, _, _ = normalise(read_source(str(clinc)), Config())

    start = time.perf_counter()
    x_train = encode(splits["train"]["text"])
    head = LogisticRegression().fit(x_train, splits["train"]["label"])
    train_s = time.perf_counter() - start
    labels = list(head.classes_)
    result = {"train_s": round(train_s, 1)}
    for split in ("validation", "test"):
        pred = head.predict(encode(splits[split]["text"]))
        y = np.array([labels.index(t) for t in splits[split]["label"]])
        p = np.array([labels.index(t) for t in pred])
        result[split] = classification_metrics(y, p, labels.index("oos"))
    return result


def main() -> None:
    clinc = require_clinc()
    results = {"machine": machine()}
    for layers in (None, 3):
        print(f"$ frozen probe, {layers or 6} layers", file=sys.stderr)
        results[f"peer_{layers or 6}"] = frozen_probe(clinc, layers)
    results["probe"] = train("finetune", "minilm-probe", "--student", "minilm-l6", "--dataset", clinc)
    results["random"] = train(
        "finetune", "minilm-random", "--student", "minilm-l6", "--dataset", clinc, "--head-init", "random"
    )
    teacher = "minilm-probe"
    results["student"] = train(
        "distill", "student-3", "--teacher", teacher, "--student", teacher, "--student-layers", "3", "--dataset", clinc
    )
    results["evaluation"] = distill(
        "evaluate", "minilm-probe", "minilm-random", "student-3", "--runs-dir", RUNS, "--cache-dir", CACHE,
        "--dataset", clinc, "--split", "test", "--output", OUT / "keep_pretrained_eval.json",
    )  # fmt: skip
    save("keep_pretrained", results)
    print(summary(results))


def summary(results: dict) -> str:
    """The markdown table for BENCHMARKS.md: validation accuracy (what choices are made on), then test."""

    lines = [
        "| model | validation acc. % | test acc. % | in-scope % | OOS recall % | with the OOS rule: test acc. % "
        "| in-scope % | OOS recall % | threshold | training s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layers in (6, 3):
        peer = results[f"peer_{layers}"]
        t = peer["test"]
        lines.append(
            f"| peer: frozen MiniLM-L6 ({layers} layers) + LogisticRegression() "
            f"| {pct(peer['validation']['accuracy'])} "
            f"| {pct(t['accuracy'])} | {pct(t['in_scope_accuracy'])} | {pct(t['oos_recall'])} | — | — | — | — "
            f"| {peer['train_s']:.0f} |"
        )
    evaluated = {m["model"]: m for m in results["evaluation"]["models"]}
    for key, name, label in (
        ("probe", "minilm-probe", "MiniLM-L6 fine-tuned, defaults (mean pooling, probe)"),
        ("random", "minilm-random", "MiniLM-L6 fine-tuned, `--head-init random`"),
        ("student", "student-3", "3-layer student distilled from the first, defaults"),
    ):
        run, m = results[key], evaluated[name]
        rule = m.get("oos_rule") or {}
        lines.append(
            f"| {label} | {pct(run['metrics']['accuracy'])} | {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} "
            f"| {pct(m['oos_recall'])} | {pct(rule.get('accuracy'))} | {pct(rule.get('in_scope_accuracy'))} "
            f"| {pct(rule.get('oos_recall'))} | {rule.get('threshold', '—')} "
            f"| {run['train_s'] + run['teacher_cache_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
