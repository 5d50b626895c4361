"""Longer training with the best epoch kept, and the sentence-geometry loss (issue "Students that beat
every peer"): MiniLM-L6 distilled from the fine-tuned MPNet teacher of `mpnet_scores.py`, without and with
`--feature-weight 1`, and MiniLM-L6 fine-tuned alone, each for up to EPOCHS epochs with the defaults
`keep_best_epoch` and `patience` 2, choosing by the validation accuracy expected with the rule; then all,
beside the 2-epoch runs of `mpnet_scores.py`, on CLINC150 "plus" test.
The distillation recipe is `mpnet_scores.py`'s (alpha 0.5, T 2, configs/clinc-minilm-offline.yaml).
Needs `make install-teacher` and the runs of `mpnet_scores.py` (the teacher's logits are in its cache).
    python benchmarks/longer_training.py             # about 55 minutes on 2 cores
"""

from __future__ import annotations

import sys

from common import CLINC, distill, machine, pct, require_clinc, save, train_once
from mpnet_scores import CACHE, CONFIG, RUNS

EPOCHS = 8


def main() -> None:
    require_clinc()
    if not (RUNS / "mpnet-plus" / "run.json").is_file():
        sys.exit(f"{RUNS / 'mpnet-plus'} not found: run benchmarks/mpnet_scores.py first")
    results = {"machine": machine(), "command": " ".join(sys.argv), "epochs": EPOCHS}
    common = ("--config", CONFIG, "--cache-dir", CACHE, "--epochs", str(EPOCHS))
    names = {"distilled": f"minilm-from-mpnet-{EPOCHS}ep", "geometry": f"minilm-from-mpnet-geometry-{EPOCHS}ep",
             "alone": f"minilm-plus-{EPOCHS}ep"}  # fmt: skip
    distill_flags = ("--teacher", "mpnet-plus", "--student", "minilm-l6", "--alpha", "0.5", "--temperature", "2")
    results["distilled"] = train_once("distill", RUNS, names["distilled"], *distill_flags, *common)
    results["geometry"] = train_once("distill", RUNS, names["geometry"], *distill_flags, "--feature-weight", "1",
                                     *common)  # fmt: skip
    results["alone"] = train_once("finetune", RUNS, names["alone"], "--student", "minilm-l6", *common)
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC)
    models = (*names.values(), "mpnet-plus", "minilm-from-mpnet")
    results["evaluation"] = distill("evaluate", *models, *where, "--latency-runs", "30")
    save("longer_training", results)
    print(summary(results))


def summary(results: dict) -> str:
    lines = ["| model | epochs run | kept | validation expected % | test argmax % | test with the rule % |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    records = {results[k]["name"]: results[k] for k in ("distilled", "geometry", "alone")}
    for m in results["evaluation"]["models"]:
        record = records.get(m["model"])
        run = (len(record["epochs"]), record["kept_epoch"], pct(record["metrics"]["expected_accuracy"])) if record \
            else ("", "", "")  # fmt: skip
        lines.append(f"| {m['model']} | {run[0]} | {run[1]} | {run[2]} | {pct(m['accuracy'])} "
                     f"| {pct(m['oos_rule']['accuracy'])} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
