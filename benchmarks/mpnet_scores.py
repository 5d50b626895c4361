"""The 110M teacher and the 22M student distilled from it, with the out-of-scope scores, against the frozen
MPNet probe given the same scores and rules, on CLINC150 "plus" (issue "Students that beat every peer").

The recipe of `real_scale.py` (configs/clinc-minilm-offline.yaml): the MPNet teacher fine-tuned 2 epochs at
lr 4e-5; MiniLM-L6 distilled from it for 2 epochs at alpha 0.5, T 2 (chosen on validation there). Both with
`oos_score auto`. The peer: frozen all-mpnet-base-v2, mean pooling, L2-normalised, `LogisticRegression(C)`
with C chosen on validation (1, 10, 100), its rule chosen by the tool's functions (`open_set.peer_rule`).
Needs `make install-teacher`. Runs that exist are reused.
    python benchmarks/mpnet_scores.py
"""

from __future__ import annotations

import sys

from common import CLINC, OUT, distill, frozen_encoder, machine, pct, require_clinc, save, train_once
from open_set import peers

RUNS, CACHE = OUT / "mpnet-scores", OUT / "cache"
CONFIG = "configs/clinc-minilm-offline.yaml"
TEACHER = "mpnet-plus"
# The teacher every MPNet study distils from; each study trains it only where no run of that name exists.
TEACHER_FLAGS = ("--student", "mpnet-base", "--learning-rate", "4e-5", "--epochs", "2", "--config", CONFIG,
                 "--cache-dir", CACHE)  # fmt: skip


def train_teacher(*extra: str, name: str = TEACHER) -> dict:
    """The MPNet teacher's run.json (``train_once`` with ``TEACHER_FLAGS`` and ``extra``)."""
    return train_once("finetune", RUNS, name, *TEACHER_FLAGS, *extra)


def student_flags(seed: int) -> tuple:
    """MiniLM-L6 distilled with the `distill` defaults (8 epochs, alpha 0.5, T 2) on this config; no teacher."""
    return ("--student", "minilm-l6", "--epochs", "8", "--seed", str(seed), "--alpha", "0.5", "--temperature", "2",
            "--config", CONFIG, "--cache-dir", CACHE)  # fmt: skip


def main() -> None:
    require_clinc()
    results = {"machine": machine(), "command": " ".join(sys.argv)}
    common = ("--config", CONFIG, "--cache-dir", CACHE, "--epochs", "2")
    results["teacher"] = train_teacher()
    results["student"] = train_once("distill", RUNS, "minilm-from-mpnet", "--teacher", "mpnet-plus", "--student",
                                    "minilm-l6", "--alpha", "0.5", "--temperature", "2", *common)  # fmt: skip
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC)
    results["evaluation"] = distill("evaluate", "mpnet-plus", "minilm-from-mpnet", *where, "--latency-runs", "30")
    print("$ the frozen MPNet probe", file=sys.stderr)
    results["peer"] = peers({"plus": CLINC}, frozen_encoder("mpnet-base", max_length=128), settings=("plus",))
    save("mpnet_scores", results)
    print(summary(results))


def summary(results: dict) -> str:
    rows = [(m["model"], m["oos_rule"]["score"], m["accuracy"], m["oos_rule"], m["separation"])
            for m in results["evaluation"]["models"]]  # fmt: skip
    p = results["peer"]["plus"]
    rows.append((f"peer: frozen MPNet + LR(C={p['C']})", p["rule"]["score"], p["argmax"]["accuracy"], p["with_rule"],
                 p["separation"]))  # fmt: skip
    lines = ["| model | score | argmax % | with the rule % | in-scope % | OOS recall % | AUROC of its score |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, score, argmax, rule, sep in rows:
        lines.append(f"| {name} | {score} | {pct(argmax)} | {pct(rule['accuracy'])} | {pct(rule['in_scope_accuracy'])} "
                     f"| {pct(rule['oos_recall'])} | {sep[score]['auroc']:.4f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
