"""Training levers for the 22M student's gap to its 110M teacher (issue "Students that beat every peer"), each a
setting of the tool, tried on a plain `distill` run:

- ``layer-decay``: layer-wise learning-rate decay (``--layer-decay 0.9``, as in ELECTRA and BEiT fine-tuning):
  the head at the run's learning rate, each encoder layer below it at 0.9 times the one above, the embeddings
  lowest, so the body the pretrained encoder gave moves less than the new head.
- ``lr-5e-5`` and ``geometry-0.1``: a lower learning rate than the config's 8e-5 (chosen at 2 epochs), and the
  sentence-geometry loss at a tenth of the weight that lost.
- ``splice-1``: one spliced query of every labelled one (the start of one, the end of another), labelled by
  the teacher, which won for the static student (``static_splice.py``).

Greedy soups of a run's epochs and of three seeds (Wortsman et al. 2022) were tried here too, through a patch of
the recipe; they lost (BENCHMARKS.md, "A soup of the epochs"), and were not made settings: their code is in this
file's history (commit dfe878a).

Each: MiniLM-L6 distilled from the MPNet teacher of `mpnet_scores.py` with the `distill` defaults (8 epochs,
alpha 0.5, T 2, its config), then `distill evaluate` on test. The run to compare with is the plain one of
the same seed ("Longer training" in BENCHMARKS.md: seed 42 kept 96.41 on validation).
Needs `make install-teacher`; runs that exist are reused.
    python benchmarks/student_levers.py --lever layer-decay|lr-5e-5|geometry-0.1|splice-1 [--seed 42]
(about 25 minutes on 2 fast cores)
"""

from __future__ import annotations

import argparse
import sys

from common import CLINC, distill, machine, require_clinc, save, train_once
from mpnet_scores import CACHE, RUNS, TEACHER, student_flags, train_teacher

# Each lever: the flags it adds to a plain run.
LEVERS = {"layer-decay": ("--layer-decay", "0.9"), "lr-5e-5": ("--learning-rate", "5e-5"),
          "geometry-0.1": ("--feature-weight", "0.1"), "splice-1": ("--splice", "1")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lever", choices=list(LEVERS), required=True)
    parser.add_argument("--seed", type=int, default=42, help="the student's seed")
    opts = parser.parse_args()
    require_clinc()
    results = {"machine": machine(), "command": " ".join(sys.argv), "lever": opts.lever}
    results["teacher"] = train_teacher()
    name = f"minilm-from-mpnet-{opts.lever}-8ep-s{opts.seed}"
    models = [TEACHER, name]
    student = ("--teacher", TEACHER, *student_flags(opts.seed))
    results["student"] = train_once("distill", RUNS, name, *student, *LEVERS[opts.lever])
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC, "--latency-runs", "5")
    results["evaluation"] = distill("evaluate", *models, *where)
    save(f"student_levers_{opts.lever}_s{opts.seed}", results)
    for m in results["evaluation"]["models"]:
        print(m["model"], m["accuracy"], m["oos_rule"])


if __name__ == "__main__":
    main()
