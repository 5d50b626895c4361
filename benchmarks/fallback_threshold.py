"""The fallback's threshold, before and after (issue "Win on data nobody here tuned for"): on the few-shot sets
of the suite (no out-of-scope label anywhere), the share of in-scope queries the fallback turns away for its
stated ``oos_reject``, with the threshold of the plain quantile of validation (before) and the split-conformal
rank that ``distill_cli.oos.choose_reject_threshold`` now takes, each set on the same run's validation split.

Each trained run of the suite is read as it is (its weights, its feature statistics, the prepared data it
trained on): the confidences are ``predict``'s, so only the threshold differs. Reported on CLINC150's whole
validation split (3,000 queries none of the runs saw: what the choice is made on) and on test.

    python benchmarks/fallback_threshold.py [--models teacher,student-splice-4,mpnet,minilm-from-mpnet]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

import numpy as np
from common import machine, markdown_table, save
from suite import CACHE, SHARED, datasets

SETS = {"clinc-5shot": "5shot", "clinc-10shot": "10shot"}


def confidences(predictor, texts: list[str]) -> np.ndarray:
    return np.array([a["confidence"] for a in predictor(texts)], dtype=np.float64)


def main() -> None:
    from datasets import load_from_disk

    from distill_cli.commands.predict import Predictor
    from distill_cli.config import Config
    from distill_cli.oos import choose_reject_threshold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="teacher,student-splice-4,mpnet,minilm-from-mpnet")
    args = parser.parse_args()
    found, rows = datasets(), []
    for name, shots in SETS.items():
        with open(SHARED / "clinc150-fewshot" / shots / "validation-full.csv", newline="") as f:
            held_out = [r["text"] for r in csv.DictReader(f)]
        for model in args.models.split(","):
            folder = found[name].runs_dir / model
            if not (folder / "run.json").is_file():
                print(f"{folder}: no run, skipped (python benchmarks/suite.py trains it)", file=sys.stderr)
                continue
            run = json.loads((folder / "run.json").read_text())
            share, data = run["config"]["oos_reject"], load_from_disk(run["dataset"]["path"])
            predictor = Predictor.load(Config(cache_dir=CACHE), str(folder))  # once: three splits read it
            validation = confidences(predictor, data["validation"]["text"])
            on = {"validation-full": confidences(predictor, held_out),
                  "test": confidences(predictor, data["test"]["text"])}  # fmt: skip
            before = float(np.quantile(validation, share, method="higher"))
            after = choose_reject_threshold(validation, "oos", share, run["oos_rule"]["score"]).threshold
            # the confidences are the ones training set its rule on: its threshold is one of the two
            assert any(np.isclose(run["oos_rule"]["threshold"], t) for t in (before, after)), folder
            row = {"dataset": name, "model": model, "share": share, "validation_n": len(validation)}
            for split, conf in on.items():
                row[split] = {"before": float((conf < before).mean()), "after": float((conf < after).mean())}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    save("fallback_threshold", {"machine": machine(), "command": " ".join(sys.argv), "rows": rows})
    header = ["dataset", "model", "n", "validation-full: before", "after", "test: before", "after"]
    cells = lambda r: [f"{r[s][w] * 100:.2f}" for s in ("validation-full", "test") for w in ("before", "after")]  # noqa: E731
    print(markdown_table(header, [[r["dataset"], r["model"], r["validation_n"], *cells(r)] for r in rows]))


if __name__ == "__main__":
    main()
