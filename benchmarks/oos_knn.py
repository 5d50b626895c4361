"""A nearest-neighbour out-of-scope score (``oos_score: knn``, Sun et al. 2022) beside the four that ``oos_score:
auto`` chooses among, on the suite's open-set runs (issue "Win on data nobody here tuned for": scores that
separate unseen intents of the same domain).

Each trained run of the suite is read as it is (its weights and the prepared data it trained on); the rule is
chosen again on its validation split by the tool's own ``oos.choose_rule``, once among ``AUTO_SCORES`` (what a
run gets today) and once with ``knn`` among them (its k chosen on the same validation), and both rules are
scored on validation (what a default is chosen on) and on test: accuracy with the rule, and the AUROC of the
chosen score for in-domain and general out-of-scope queries.

    python benchmarks/oos_knn.py [--runs banking/teacher,credit_cards/minilm-from-mpnet]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from common import machine, markdown_table, save
from suite import CACHE, HERE, auroc_by_kind

SETS = ("banking", "credit_cards", "banking-5shot", "credit_cards-5shot")
MODELS = ("teacher", "student", "student-splice-4", "minilm-from-mpnet", "mpnet")


def outputs(predictor, texts: list[str]):
    from distill_cli import inference

    return inference.batched_outputs(predictor.model, predictor.tokenizer, texts, predictor.max_length, features=True)


def split_of(predictor, data, source: Path, split: str) -> dict:
    """Logits, features, gold ids in the model's output order (out of scope: one past the intents), kinds."""
    names = data[split].features["label"].names
    logits, features = outputs(predictor, list(data[split]["text"]))
    oos_id = len(predictor.labels)
    y = np.array([predictor.labels.index(names[i]) if names[i] in predictor.labels else oos_id
                  for i in data[split]["label"]])  # fmt: skip
    kinds = np.array((source / f"{split}_kind.txt").read_text().split())
    if len(kinds) != len(y):
        sys.exit(f"{source}: {len(kinds)} kinds for {len(y)} {split} rows")
    return {"logits": logits, "features": features, "y": y, "kinds": kinds}


def scored(rule, s: dict, stats, oos_id: int) -> dict:
    from distill_cli.oos import confidence, decide

    conf = confidence(rule.score, s["logits"], s["features"], stats)
    decided = decide(s["logits"].argmax(-1), conf, oos_id, rule.threshold)
    return {"with_rule": float((decided == s["y"]).mean()), "auroc": auroc_by_kind(conf, s["kinds"])}


def main() -> None:
    from datasets import load_from_disk

    from distill_cli.commands.predict import Predictor
    from distill_cli.config import Config
    from distill_cli.oos import choose_rule
    from distill_cli.oos_scores import AUTO_SCORES, FeatureStats

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=None, help="comma-separated SET/MODEL (default: every one there is)")
    args = parser.parse_args()
    names = args.runs.split(",") if args.runs else [f"{d}/{m}" for d in SETS for m in MODELS]
    rows = []
    for name in names:
        folder = HERE / "runs" / name
        if not (folder / "run.json").is_file():
            continue
        run = json.loads((folder / "run.json").read_text())
        data, source = load_from_disk(run["dataset"]["path"]), Path(run["config"]["dataset"])
        predictor = Predictor.load(Config(cache_dir=CACHE), str(folder))
        oos_id = len(predictor.labels)
        _, train_features = outputs(predictor, list(data["train"]["text"]))
        names_train = data["train"].features["label"].names
        train_y = np.array([predictor.labels.index(names_train[i]) for i in data["train"]["label"]])
        splits = {s: split_of(predictor, data, source, s) for s in ("validation", "test")}
        v = splits["validation"]
        row = {"run": name, "train_s": run.get("train_s")}
        stats = FeatureStats.fit(train_features, train_y)  # as training fits them: the labelled queries
        in_scope = v["y"] != oos_id
        stats.calibrate(v["logits"][in_scope], v["features"][in_scope])
        for label, candidates in (("auto", AUTO_SCORES), ("auto+knn", (*AUTO_SCORES, "knn"))):
            # one fit for both: only knn's choice of k (the second) changes the statistics
            rule = choose_rule(list(candidates), False, v["logits"], v["y"], oos_id, "oos", 0.18, v["features"], stats)
            row[label] = {"score": rule.score, "k": stats.k if rule.score == "knn" else None,
                          **{s: scored(rule, splits[s], stats, oos_id) for s in splits}}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    save("oos_knn", {"machine": machine(), "command": " ".join(sys.argv), "rows": rows})
    header = ["run", "auto: score", "validation % (AUROC in-domain)", "test %", "with knn: score", "validation %",
              "test %"]  # fmt: skip
    print(markdown_table(header, [[r["run"], *cells(r["auto"]), *cells(r["auto+knn"])] for r in rows]))


def cells(x: dict) -> list[str]:
    """A rule's score, and its accuracy with the rule (in-domain AUROC) on validation and test."""
    figures = [f"{x[s]['with_rule'] * 100:.2f} ({x[s]['auroc']['id-oos']:.3f})" for s in ("validation", "test")]
    return [x["score"] + (f" (k {x['k']})" if x["k"] else ""), *figures]


if __name__ == "__main__":
    main()
