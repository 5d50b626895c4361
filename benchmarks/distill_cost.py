"""What an epoch of distillation costs: finetune vs distill (cached teacher logits) vs distill --teacher-mode online.

On CLINC150 "plus" from ../shared, MiniLM-L6 teacher, 3-layer student cut from the teacher's layers,
all in one run on the same machine. Every configuration trains for --epochs epochs (evaluation on the
validation split after each epoch included); the cached run starts from a cold cache, so its
``teacher_cache_s`` is the one-time cost of running the teacher over the training split.

    python benchmarks/distill_cost.py [--teacher RUN] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from common import OUT, distill, machine, require_clinc, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="minilm-clinc", help="teacher run under --runs-dir (made if missing)")
    parser.add_argument("--runs-dir", default=str(OUT / "runs"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    require_clinc()
    common = ["--config", "configs/clinc-minilm-offline.yaml", "--runs-dir", args.runs_dir]
    cache = OUT / "cost-cache"
    shutil.rmtree(cache, ignore_errors=True)  # a cold teacher-logit cache
    common_cached = [*common, "--cache-dir", cache]
    teacher_run = f"{args.runs_dir}/{args.teacher}"
    if not os.path.isdir(teacher_run):
        distill("finetune", *common, "--name", args.teacher)
    student = ["--student", args.teacher, "--student-layers", "3", "--epochs", str(args.epochs), "--overwrite"]
    runs = {
        "finetune": distill("finetune", *common_cached, *student, "--name", "cost-finetune"),
        "distill (cached)": distill(
            "distill", *common_cached, *student, "--teacher", args.teacher, "--name", "cost-distill-cached"
        ),
        "distill (online)": distill(
            "distill",
            *common_cached,
            *student,
            "--teacher",
            args.teacher,
            "--teacher-mode",
            "online",
            "--name",
            "cost-distill-online",
        ),
    }
    base = runs["finetune"]["train_s"] / args.epochs
    online_total = runs["distill (online)"]["train_s"]
    rows = []
    for name, r in runs.items():
        per_epoch = r["train_s"] / args.epochs
        total = r["train_s"] + r["teacher_cache_s"]
        rows.append(
            {
                "run": name,
                "epoch_s": round(per_epoch, 1),
                "vs_finetune": round(per_epoch / base, 3),
                "teacher_cache_s": r["teacher_cache_s"],
                "total_s": round(total, 1),
                "total_vs_online": round(total / online_total, 3),
                "val_accuracy": round(r["metrics"]["accuracy"], 4),
            }
        )
    payload = {"epochs": args.epochs, "machine": machine(), "command": " ".join(sys.argv), "rows": rows}
    save("distill_cost", payload)
    print(
        f"| run | s/epoch | × finetune epoch | teacher cache s | {args.epochs} epochs + cache, s | × online | val acc |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['epoch_s']} | {r['vs_finetune']} | {r['teacher_cache_s']} | {r['total_s']} | "
            f"{r['total_vs_online']} | {r['val_accuracy']} |"
        )


if __name__ == "__main__":
    main()
