"""Does a student learn more from two teachers than from one? (issue "Students that beat every peer",
the 22M student's gap to its 110M teacher.)

Two MPNet teachers fine-tuned alike but for the seed (`mpnet_scores.py`'s recipe, seeds 42 and 43); then
MiniLM-L6 distilled for 8 epochs (the `distill` defaults: alpha 0.5, T 2) from the mean of their logits
over the training queries, against the same student distilled from the seed-42 teacher alone. The mean is
written to a file of soft labels (one text and its logits a line) and given to `distill distill
--teacher-labels`, as a user gives the labels of anything outside the tool: nothing of the tool is patched.
Then `distill evaluate` on test of the teachers and students.
Needs `make install-teacher`; runs that exist are reused.
    python benchmarks/ensemble_teacher.py [--seed 42]      (about an hour on 2 fast cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import CLINC, distill, machine, require_clinc, save, train_once
from mpnet_scores import CACHE, CONFIG, RUNS, student_flags, train_teacher


def training_texts() -> list[str]:
    """The training queries of the students' config, as `distill prepare` reads them."""
    import datasets

    prepared = distill("prepare", "--config", CONFIG, "--cache-dir", CACHE)
    return list(datasets.load_from_disk(prepared["output"])["train"]["text"])


def mean_teacher_labels(teachers: list[Path], texts: list[str], path: Path, max_length: int = 64) -> Path:
    """A JSON-lines file of the mean of the ``teachers``' logits over ``texts`` (their labels must agree),
    through the tool's public functions (``modeling``, ``inference``)."""
    from distill_cli import inference, modeling
    from distill_cli.config import Config

    cfg = Config(cache_dir=CACHE)
    total, labels = None, None
    for folder in teachers:
        ref = modeling.resolve_model(str(folder), cfg)
        model, names = modeling.load_classifier_for_inference(ref, cfg)
        if labels is not None and names != labels:
            sys.exit(f"teacher {folder}: its labels differ from {teachers[0]}'s")
        labels = names
        logits = inference.batched_logits(model, modeling.load_tokenizer(ref, cfg), texts, max_length, 64, str(folder))
        total = logits if total is None else total + logits
    mean = total / len(teachers)
    with path.open("w") as f:
        for text, row in zip(texts, mean):
            f.write(json.dumps({"text": text, "logits": dict(zip(labels, map(float, row)))}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=42, help="the students' seed")
    opts = parser.parse_args()
    require_clinc()
    results = {"machine": machine(), "command": " ".join(sys.argv)}
    results["teacher-42"] = train_teacher()
    results["teacher-43"] = train_teacher("--seed", "43", name="mpnet-plus-s43")
    student = student_flags(opts.seed)
    name = f"minilm-from-mpnet-8ep-s{opts.seed}" if opts.seed != 42 else "minilm-from-mpnet-8ep"
    # The one-teacher student of the same seed, where an earlier run left it (BENCHMARKS.md has its figures).
    results["student-one"] = train_once("distill", RUNS, name, "--teacher", "mpnet-plus", *student, reuse_only=True)
    pair = f"minilm-from-mpnet-pair-8ep-s{opts.seed}"
    mean = RUNS / "mpnet-plus-pair-logits.jsonl"
    if not mean.is_file():
        mean_teacher_labels([RUNS / "mpnet-plus", RUNS / "mpnet-plus-s43"], training_texts(), mean)
    results["student-pair"] = train_once("distill", RUNS, pair, "--teacher-labels", mean, *student)
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC, "--latency-runs", "5")
    models = ["mpnet-plus", "mpnet-plus-s43", *([name] if results["student-one"] else []), pair]
    results["evaluation"] = distill("evaluate", *models, *where)
    save(f"ensemble_teacher_s{opts.seed}", results)
    for m in results["evaluation"]["models"]:
        print(m["model"], m["accuracy"], m["oos_rule"])


if __name__ == "__main__":
    main()
