"""Does a student learn more from two teachers than from one? (issue "Students that beat every peer",
the 22M student's gap to its 110M teacher.)

Two MPNet teachers fine-tuned alike but for the seed (`mpnet_scores.py`'s recipe, seeds 42 and 43); then
MiniLM-L6 distilled for 8 epochs (the `distill` defaults: alpha 0.5, T 2) from the mean of their logits
over the training queries, against the same student distilled from the seed-42 teacher alone. The mean
is put in through a patched teacher pass (``--patched-distill``): it is not a flag of the tool, and
becomes one only if it wins on validation. Then `distill evaluate` on test of the teachers and students.
Needs `make install-teacher`; runs that exist are reused.
    python benchmarks/ensemble_teacher.py [--seed 42]      (about an hour on 2 fast cores)
"""

from __future__ import annotations

import argparse
import os
import sys

from common import CLINC, distill, machine, require_clinc, save, train_once
from mpnet_scores import CACHE, RUNS, student_flags, train_teacher

EXTRA = "DISTILL_BENCH_EXTRA_TEACHERS"  # the patched run's further teachers, comma-separated run names


def patched_distill(argv: list[str]) -> None:
    """`distill ARGV` with the teacher's logits replaced by the mean over the teacher and the runs named in
    ``$DISTILL_BENCH_EXTRA_TEACHERS`` (each from the tool's own cache; the labels must agree)."""
    from distill_cli import modeling
    from distill_cli.cli import main
    from distill_cli.training import recipe, teacher_cache

    own, extra = teacher_cache.teacher_logits, os.environ[EXTRA].split(",")

    def mean_logits(cfg, ref, model_config, texts, what="logits"):
        values, reused = own(cfg, ref, model_config, texts, what)
        if what != "logits":
            return values, reused
        for name in extra:
            other = modeling.resolve_model(name, cfg)
            other_config = modeling.load_model_config(other, cfg)
            if other_config.id2label != model_config.id2label:
                sys.exit(f"teacher {name}: its labels differ from {ref.spec}'s")
            values = values + own(cfg, other, other_config, texts)[0]
        return values / (1 + len(extra)), reused

    recipe.teacher_logits = mean_logits
    main(argv)


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
    print("the next run is patched: it learns from the mean of mpnet-plus and mpnet-plus-s43", file=sys.stderr)
    patched = [sys.executable, __file__, "--patched-distill"]
    results["student-pair"] = train_once("distill", RUNS, pair, "--teacher", "mpnet-plus", *student,
                                         env={EXTRA: "mpnet-plus-s43"}, entry=patched)  # fmt: skip
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC, "--latency-runs", "5")
    models = ["mpnet-plus", "mpnet-plus-s43", *([name] if results["student-one"] else []), pair]
    results["evaluation"] = distill("evaluate", *models, *where)
    save(f"ensemble_teacher_s{opts.seed}", results)
    for m in results["evaluation"]["models"]:
        print(m["model"], m["accuracy"], m["oos_rule"])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--patched-distill":
        patched_distill(sys.argv[2:])
    else:
        main()
