"""Does a student learn more from two teachers than from one? (issue "Students that beat every peer",
the 22M student's gap to its 110M teacher.)

Two MPNet teachers fine-tuned alike but for the seed (`mpnet_scores.py`'s recipe, seeds 42 and 43); then
MiniLM-L6 distilled for 8 epochs (the `distill` defaults: alpha 0.5, T 2) from the mean of their logits
over the training queries (`distill distill --teacher mpnet-plus --teacher mpnet-plus-s43`: an ensemble,
each member's logits cached on its own), against the same student distilled from the seed-42 teacher alone.
Then `distill evaluate` on test of the teachers and students.
Needs `make install-teacher`; runs that exist are reused.
    python benchmarks/ensemble_teacher.py [--seed 42]      (about an hour on 2 fast cores)
"""

from __future__ import annotations

import argparse
import sys

from common import CLINC, distill, machine, require_clinc, save, train_once
from mpnet_scores import CACHE, RUNS, student_flags, train_teacher


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
    ensemble = ("--teacher", "mpnet-plus", "--teacher", "mpnet-plus-s43")
    results["student-pair"] = train_once("distill", RUNS, pair, *ensemble, *student)
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC, "--latency-runs", "5")
    models = ["mpnet-plus", "mpnet-plus-s43", *([name] if results["student-one"] else []), pair]
    results["evaluation"] = distill("evaluate", *models, *where)
    save(f"ensemble_teacher_s{opts.seed}", results)
    for m in results["evaluation"]["models"]:
        print(m["model"], m["accuracy"], m["oos_rule"])


if __name__ == "__main__":
    main()
