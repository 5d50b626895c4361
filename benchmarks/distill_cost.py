"""What an epoch of distillation costs: finetune vs distill (cached teacher logits) vs distill --teacher-mode online.

On CLINC150 "plus" from ../shared, MiniLM-L6 teacher, 3-layer student cut from the teacher's layers. The
three configurations run interleaved, --repeats times, on the same machine in one run; each reports the
median seconds of one training epoch (the validation pass after each epoch is subtracted, as it is the
same for all three). The first cached run starts from a cold cache: its ``teacher_cache_s`` is the
one-time cost of running the teacher over the training split.

    python benchmarks/distill_cost.py [--teacher RUN] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from common import OUT, distill, machine, require_clinc, save

CONFIGS = {
    "finetune": ("finetune",),
    "distill (cached)": ("distill", "--teacher-mode", "cached"),
    "distill (online)": ("distill", "--teacher-mode", "online"),
}


def epoch_seconds(result: dict, epochs: int) -> float:
    """Training seconds per epoch: the run's train_s less its per-epoch evaluations."""
    run = json.loads((Path(result["output"]) / "run.json").read_text())
    return (run["train_s"] - run["eval_s"]) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="minilm-clinc", help="teacher run under --runs-dir (made if missing)")
    parser.add_argument("--runs-dir", default=str(OUT / "runs"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_clinc()
    common = ["--config", "configs/clinc-minilm-offline.yaml", "--runs-dir", args.runs_dir]
    if not (Path(args.runs_dir) / args.teacher / "run.json").is_file():
        distill("finetune", *common, "--name", args.teacher)
    cache = OUT / "cost-cache"
    shutil.rmtree(cache, ignore_errors=True)  # the first cached run builds the teacher logits from scratch
    student = [
        *common,
        "--cache-dir",
        cache,
        "--student",
        args.teacher,
        "--student-layers",
        "3",
        "--epochs",
        str(args.epochs),
        "--overwrite",
    ]
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    accuracy, cache_s = {}, None
    for repeat in range(args.repeats):
        for name, (command, *extra) in CONFIGS.items():
            teacher = ["--teacher", args.teacher] if command == "distill" else []
            r = distill(command, *student, *teacher, *extra, "--name", f"cost-{command}-{len(extra)}-{repeat}")
            seconds[name].append(epoch_seconds(r, args.epochs))
            accuracy[name] = r["metrics"]["accuracy"]
            if name == "distill (cached)" and cache_s is None:
                cache_s = r["teacher_cache_s"]

    epoch = {name: statistics.median(v) for name, v in seconds.items()}
    n = 3  # the horizon: three epochs, cache build included
    cached_total = n * epoch["distill (cached)"] + cache_s
    online_total = n * epoch["distill (online)"]
    rows = [
        {
            "run": name,
            "epoch_s": round(epoch[name], 1),
            "epoch_s_all": [round(x, 1) for x in seconds[name]],
            "vs_finetune": round(epoch[name] / epoch["finetune"], 3),
            "val_accuracy": round(accuracy[name], 4),
        }
        for name in CONFIGS
    ]
    payload = {
        "epochs_per_run": args.epochs,
        "repeats": args.repeats,
        "teacher_cache_s": cache_s,
        "three_epochs_cached_with_cache_s": round(cached_total, 1),
        "three_epochs_online_s": round(online_total, 1),
        "cached_vs_online": round(cached_total / online_total, 3),
        "rows": rows,
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    save("distill_cost", payload)
    print("| run | s per training epoch (median) | each repeat | × finetune epoch | val acc |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['epoch_s']} | {', '.join(map(str, r['epoch_s_all']))} | {r['vs_finetune']} | "
            f"{r['val_accuracy']} |"
        )
    print(
        f"\none-time teacher cache: {cache_s:.1f} s; 3 epochs cached + cache: {cached_total:.1f} s; "
        f"3 epochs online: {online_total:.1f} s; ratio {cached_total / online_total:.3f}"
    )


if __name__ == "__main__":
    main()
