"""`distill search` on CLINC150 "plus": what a study finds, and what it costs next to the textbook's search.

  1. The teacher: MiniLM-L6 fine-tuned with the defaults (the run of keep_pretrained.py, trained if missing).
  2. A study of 8 trials (benchmarks/search_clinc.yaml): a 3-layer cut of the pretrained MiniLM-L6, alpha,
     T, 1-3 epochs and the learning rate searched on validation, median pruning. A fresh cache folder, so
     that the teacher's one pass over the training set is part of the study's wall time.
  3. At the best trial's epochs and learning rate, the same student trained with the book's values
     (alpha 0.12, T 7) and with alpha 1 (labels alone); the three on test.
  4. Cost: study wall time against the sum of its trials' student time, and the textbook's cost estimated
     as that sum plus one teacher pass per epoch run (the teacher runs in every step of every trial).

    python benchmarks/search_study.py      (about 35 minutes on 2 cores)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import OUT, REPO, distill, machine, pct, require_clinc, save
from keep_pretrained import RUNS as TEACHER_RUNS
from keep_pretrained import train as train_teacher

HERE = OUT / "search"
CONFIG = REPO / "benchmarks" / "search_clinc.yaml"


def main() -> None:
    clinc = require_clinc()
    train_teacher("finetune", "minilm-probe", "--student", "minilm-l6", "--dataset", clinc)
    teacher = TEACHER_RUNS / "minilm-probe"
    shutil.rmtree(HERE, ignore_errors=True)  # our own output: a new study, a cold teacher cache
    common = ("--config", CONFIG, "--dataset", clinc, "--runs-dir", HERE, "--cache-dir", HERE / "cache")
    study = distill("search", *common, "--teacher", teacher, "--name", "clinc-3", "--plot", HERE / "study.png")
    best = study["best"]
    same = ("--epochs", best["params"]["epochs"], "--learning-rate", best["params"]["learning_rate"])
    runs = {
        "book": distill("distill", *common, *same, "--teacher", teacher, "--alpha", "0.12", "--temperature", "7",
                        "--name", "book"),
        "alpha1": distill("distill", *common, *same, "--teacher", teacher, "--alpha", "1", "--name", "alpha1"),
    }  # fmt: skip
    evaluation = distill(
        "evaluate", Path(best["run"]).resolve(), "book", "alpha1", "--runs-dir", HERE, "--cache-dir", HERE / "cache",
        "--dataset", clinc, "--split", "test", "--latency-runs", "20",
    )  # fmt: skip
    results = {"machine": machine(), "study": study, "runs": runs, "evaluation": evaluation}
    save("search_study", results)
    print(summary(results))


def summary(results: dict) -> str:
    """The markdown tables for BENCHMARKS.md."""
    study, models = results["study"], results["evaluation"]["models"]
    best = study["best"]

    validation = [best["value"]] + [r["metrics"]["accuracy"] for r in results["runs"].values()]
    lines = [
        "| student (3-layer MiniLM-L6, same epochs and learning rate) | alpha | T | validation acc. % "
        "| test acc. % | in-scope % | OOS recall % | with the OOS rule: test acc. % | in-scope % | OOS recall % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = [
        ("best trial of the study", best["params"]["alpha"], best["params"]["temperature"]),
        ("the book's values", 0.12, 7.0),
        ("alpha 1 (labels alone)", 1.0, "—"),
    ]
    for (label, alpha, t), m, val in zip(labels, models, validation):
        rule = m.get("oos_rule") or {}
        t = t if isinstance(t, str) else f"{t:.2f}"
        lines.append(
            f"| {label} | {alpha:.2f} | {t} | {pct(val)} | {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} "
            f"| {pct(m['oos_recall'])} | {pct(rule.get('accuracy'))} | {pct(rule.get('in_scope_accuracy'))} "
            f"| {pct(rule.get('oos_recall'))} |"
        )
    textbook = study["student_s"] + study["epochs_run"] * study["teacher_s"]
    lines += [
        "",
        "| cost of the study | seconds |",
        "|---|---|",
        f"| study wall time (setup, teacher pass, {study['added']} trials) | {study['wall_s']:.0f} |",
        f"| sum of the trials' student time | {study['student_s']:.0f} |",
        f"| wall / students | {study['wall_s'] / study['student_s']:.3f} |",
        f"| the teacher's one pass over the training set | {study['teacher_s']:.0f} |",
        f"| textbook estimate: students + one teacher pass per epoch run ({study['epochs_run']}) | {textbook:.0f} |",
        f"| epochs not run thanks to pruning | {study['epochs_saved_by_pruning']:.0%} "
        f"({study['epochs_planned'] - study['epochs_run']} of {study['epochs_planned']}) |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
