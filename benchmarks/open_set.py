"""Out of scope without out-of-scope training data, on CLINC150 from ../shared.

  1. open-set: "plus" train without `oos_train` (15,000 queries, 150 intents), validation `val` + `oos_val`,
     test `test` + `oos_test` (5,500). `distill finetune --student minilm-l6` with the defaults: the model has
     no out-of-scope output; its rule is chosen on validation's 100 out-of-scope queries;
  2. no out-of-scope anywhere: the same data with every out-of-scope query removed; the fallback
     (`oos_reject` 0.05) is the rule; evaluated on test with the out-of-scope queries put back;
  3. the peer, pinned, given the same scores and rule: the frozen MiniLM-L6, mean pooling, L2 normalisation,
     `LogisticRegression(C)` with C chosen on validation in-scope accuracy from 1, 10, 100; the threshold
     chosen as the tool chooses it (validation, `oos_share` 0.18).

Every figure is on test; every choice on validation. Runs that exist are reused.
    python benchmarks/open_set.py
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from common import OUT, distill, frozen_minilm, machine, pct, require_clinc, save, train_once

RUNS = OUT / "open-set"
CACHE = OUT / "cache"


def datasets(clinc) -> dict:
    """The open-set file and the file without any out-of-scope query (written under benchmarks/out)."""
    data = json.loads(clinc.read_text())
    RUNS.mkdir(parents=True, exist_ok=True)
    files = {
        "open_set": {k: v for k, v in data.items() if k != "oos_train"},
        "no_oos": {k: v for k, v in data.items() if not k.startswith("oos_")},
    }
    paths = {}
    for name, content in files.items():
        paths[name] = RUNS / f"{name}.json"
        if not paths[name].is_file():
            paths[name].write_text(json.dumps(content))
    return paths


def peer(open_set) -> dict:
    """The frozen MiniLM-L6 probe with the tool's scores and rule."""
    from sklearn.linear_model import LogisticRegression

    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source
    from distill_cli.metrics import classification_metrics, separation
    from distill_cli.oos import apply_rule, choose_threshold, softmax

    encode = frozen_minilm(max_length=128)
    splits, _, _ = normalise(read_source(str(open_set)), Config())

    start = time.perf_counter()
    x = {s: encode(splits[s]["text"]) for s in ("train", "validation", "test")}
    intents = sorted(set(splits["train"]["label"]))
    labels = [*intents, "oos"]
    y = {s: np.array([labels.index(t) for t in splits[s]["label"]]) for s in x}
    oos_id, in_val = len(intents), y["validation"] != len(intents)
    heads = {c: LogisticRegression(C=c, max_iter=1000).fit(x["train"], y["train"]) for c in (1, 10, 100)}
    accuracy = {
        c: float((h.predict(x["validation"])[in_val] == y["validation"][in_val]).mean()) for c, h in heads.items()
    }
    best_c = max(accuracy, key=accuracy.get)
    logits = {s: heads[best_c].decision_function(x[s]) for s in ("validation", "test")}
    rule = choose_threshold(softmax(logits["validation"]), y["validation"], oos_id, "oos", 0.18)
    probs = softmax(logits["test"])
    return {
        "C": best_c,
        "validation_in_scope_accuracy": accuracy,
        "seconds": round(time.perf_counter() - start, 1),
        "threshold": rule.threshold,
        "argmax": classification_metrics(y["test"], probs.argmax(-1), oos_id),
        "with_rule": classification_metrics(y["test"], apply_rule(probs, oos_id, rule.threshold), oos_id),
        "separation": separation(logits["test"], y["test"], oos_id),
    }


def main() -> None:
    clinc = require_clinc()
    paths = datasets(clinc)
    results = {"machine": machine(), "command": " ".join(sys.argv)}
    common = ("--student", "minilm-l6", "--cache-dir", CACHE)
    results["open_set_run"] = train_once("finetune", RUNS, "minilm-open-set", "--dataset", paths["open_set"], *common)
    results["no_oos_run"] = train_once("finetune", RUNS, "minilm-no-oos", "--dataset", paths["no_oos"], *common)
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", paths["open_set"])
    results["evaluation"] = distill("evaluate", "minilm-open-set", "minilm-no-oos", *where, "--latency-runs", "50")
    print("$ the frozen MiniLM-L6 probe", file=sys.stderr)
    results["peer"] = peer(paths["open_set"])
    save("open_set", results)
    print(summary(results))


def summary(results: dict) -> str:
    models = {m["model"]: m for m in results["evaluation"]["models"]}
    p = results["peer"]
    ps, pe = p["separation"]["max_softmax"], p["separation"]["energy"]
    lines = [
        "| model | rule | argmax acc. % | with the rule: acc. % | in-scope % | OOS recall % | in-scope turned "
        "away % | AUROC max softmax | AUROC energy | FPR@95 max softmax | FPR@95 energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| peer: frozen MiniLM-L6 + LogisticRegression(C={p['C']}) | threshold {p['threshold']} "
        f"| {pct(p['argmax']['accuracy'])} | {pct(p['with_rule']['accuracy'])} "
        f"| {pct(p['with_rule']['in_scope_accuracy'])} | {pct(p['with_rule']['oos_recall'])} | — "
        f"| {ps['auroc']:.4f} | {pe['auroc']:.4f} | {pct(ps['fpr_at_95_tpr'])} | {pct(pe['fpr_at_95_tpr'])} |",
    ]
    for name, label in (("minilm-open-set", "MiniLM-L6 fine-tuned, open-set"),
                        ("minilm-no-oos", "MiniLM-L6 fine-tuned, no out-of-scope data")):  # fmt: skip
        m = models[name]
        r, s = m["oos_rule"], m["separation"]
        kind = f"fallback {r['reject_share']}" if r.get("reject_share") else f"threshold {r['threshold']}"
        lines.append(
            f"| {label} | {kind} | {pct(m['accuracy'])} | {pct(r['accuracy'])} | {pct(r['in_scope_accuracy'])} "
            f"| {pct(r['oos_recall'])} | {pct(r['in_scope_rejected'])} | {s['max_softmax']['auroc']:.4f} "
            f"| {s['energy']['auroc']:.4f} | {pct(s['max_softmax']['fpr_at_95_tpr'])} "
            f"| {pct(s['energy']['fpr_at_95_tpr'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
