"""Chapter 8's experiment, offline, driven through the `distill` CLI on CLINC150 "plus" from ../shared.

1. fine-tune a MiniLM-L6 teacher (6 layers);
2. fine-tune a 3-layer student alone (alpha 1), cut from the teacher's layers;
3. pick alpha and temperature with a small sweep on the validation split (never on test);
4. distill the same 3-layer student with the chosen values (cold teacher-logit cache: its cost is counted);
5. train the textbook recipe (benchmarks/textbook.py) on the same data, initialisation and hyperparameters;
6. evaluate everything on the test split, side by side.

    python benchmarks/reproduce_book.py [--seeds 1] [--epochs 5] [--sweep-epochs 2]

About an hour on 2 CPU cores with the defaults; --seeds 3 repeats the two student runs with three seeds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from common import OUT, REPO, distill, machine, require_clinc, save

CONFIG = "configs/clinc-minilm-offline.yaml"
SWEEP = [(0.12, 7.0), (0.12, 2.0), (0.5, 7.0), (0.5, 2.0)]  # the book's optimum and its neighbours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5, help="teacher and student epochs")
    parser.add_argument("--sweep-epochs", type=int, default=2)
    parser.add_argument("--runs-dir", default=str(OUT / "runs"))
    parser.add_argument("--teacher", default="minilm-clinc", help="teacher run name (reused when it exists)")
    args = parser.parse_args()
    require_clinc()
    runs_dir, cache = Path(args.runs_dir), OUT / "cache"
    common = ["--config", CONFIG, "--runs-dir", runs_dir, "--cache-dir", cache, "--epochs", str(args.epochs)]
    seeds = [42 + i for i in range(args.seeds)]
    results: dict = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "epochs": args.epochs,
        "sweep_epochs": args.sweep_epochs,
        "seeds": seeds,
    }

    # 1. The teacher.
    if (runs_dir / args.teacher / "run.json").is_file():
        print(f"reusing the teacher run {runs_dir / args.teacher}", file=sys.stderr)
    else:
        distill("finetune", *common, "--name", args.teacher)
    student = ["--student", args.teacher, "--student-layers", "3", "--overwrite"]

    # 3. The sweep, on validation accuracy.
    sweep = []
    for alpha, temp in SWEEP:
        r = distill(
            "distill",
            *common,
            *student,
            "--teacher",
            args.teacher,
            "--alpha",
            alpha,
            "--temperature",
            temp,
            "--epochs",
            str(args.sweep_epochs),
            "--name",
            f"sweep-a{alpha}-t{temp:g}",
        )
        sweep.append({"alpha": alpha, "temperature": temp, "val_accuracy": r["metrics"]["accuracy"]})
    best = max(sweep, key=lambda s: s["val_accuracy"])
    results["sweep"], results["chosen"] = sweep, best

    # 2 and 4. The students, per seed. The distilled run gets a cold teacher-logit cache.
    alone, distilled = [], []
    for seed in seeds:
        alone.append(distill("finetune", *common, *student, "--seed", seed, "--name", f"student-alone-s{seed}"))
        cold = OUT / f"cold-cache-s{seed}"
        shutil.rmtree(cold, ignore_errors=True)
        distilled.append(
            distill(
                "distill",
                *common,
                *student,
                "--teacher",
                args.teacher,
                "--seed",
                seed,
                "--alpha",
                best["alpha"],
                "--temperature",
                best["temperature"],
                "--cache-dir",
                cold,
                "--name",
                f"student-distilled-s{seed}",
            )
        )
    results["alone"], results["distilled"] = alone, distilled

    # 5. The textbook recipe, first seed, same everything.
    sys.path.insert(0, str(REPO))
    from textbook import train_textbook

    from distill_cli.config import load_config

    cfg = load_config(
        REPO / CONFIG,
        "distill",
        {
            "runs_dir": runs_dir,
            "cache_dir": cache,
            "epochs": args.epochs,
            "student": args.teacher,
            "student_layers": 3,
            "teacher": args.teacher,
            "alpha": best["alpha"],
            "temperature": best["temperature"],
            "seed": seeds[0],
        },
    )
    print("$ textbook recipe (benchmarks/textbook.py)", file=sys.stderr)
    textbook_dir = runs_dir / f"textbook-s{seeds[0]}"
    shutil.rmtree(textbook_dir, ignore_errors=True)
    results["textbook"] = train_textbook(cfg, textbook_dir)

    # 6. Side by side on test.
    models = [
        args.teacher,
        *(f"student-alone-s{s}" for s in seeds),
        *(f"student-distilled-s{s}" for s in seeds),
        textbook_dir.name,
    ]
    report = distill(
        "evaluate",
        *models,
        "--runs-dir",
        runs_dir,
        "--cache-dir",
        cache,
        "--split",
        "test",
        "--output",
        OUT / "reproduce_book_eval.json",
    )
    results["evaluation"] = report
    save("reproduce_book", results)
    print(summary(results))


def summary(results: dict) -> str:
    """The markdown table for BENCHMARKS.md."""
    by_name = {m["model"]: m for m in results["evaluation"]["models"]}
    teacher = results["evaluation"]["models"][0]
    seeds = results["seeds"]

    def agg(prefix: str, key: str) -> tuple[float, float]:
        vals = [by_name[f"{prefix}-s{s}"][key] for s in seeds]
        return statistics.fmean(vals), (max(vals) - min(vals)) / 2

    def fmt(mean: float, spread: float, pct: bool = True) -> str:
        scale = 100 if pct else 1
        return f"{mean * scale:.2f}" + (f" ± {spread * scale:.2f}" if len(seeds) > 1 else "")

    def row(label, m, train_s, prefix=None):
        acc = fmt(*agg(prefix, "accuracy")) if prefix else f"{m['accuracy'] * 100:.2f}"
        ins = fmt(*agg(prefix, "in_scope_accuracy")) if prefix else f"{m['in_scope_accuracy'] * 100:.2f}"
        oos = fmt(*agg(prefix, "oos_recall")) if prefix else f"{m['oos_recall'] * 100:.2f}"
        return (
            f"| {label} | {m['size_mb']:.1f} | {m['latency_ms_mean']:.2f} ± {m['latency_ms_std']:.2f} | "
            f"{m['throughput_qps']:.0f} | {acc} | {ins} | {oos} | {train_s} |"
        )

    first = seeds[0]
    d0 = results["distilled"][0]
    lines = [
        "| model | size MB | latency ms | throughput q/s | accuracy % | in-scope % | oos recall % | training s |",
        "|---|---|---|---|---|---|---|---|",
        row("teacher MiniLM-L6 (6 layers)", teacher, "see teacher run"),
        row(
            "student alone (3 layers, alpha 1)",
            by_name[f"student-alone-s{first}"],
            f"{results['alone'][0]['train_s']:.0f}",
            "student-alone",
        ),
        row(
            f"student distilled (alpha {results['chosen']['alpha']}, T {results['chosen']['temperature']:g})",
            by_name[f"student-distilled-s{first}"],
            f"{d0['train_s'] + d0['teacher_cache_s']:.0f} (cache {d0['teacher_cache_s']:.0f})",
            "student-distilled",
        ),
        row("textbook recipe (online teacher)", by_name[f"textbook-s{first}"], f"{results['textbook']['train_s']:.0f}"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
