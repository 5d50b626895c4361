"""The book's experiment at its real scale, offline, on CLINC150 "plus" from ../shared: a 110M-parameter
MPNet-base teacher (all-mpnet-base-v2, alias mpnet-base) taught to a pretrained MiniLM-L6 (another
architecture and another vocabulary, through the teacher-logit cache) and to its 3-layer cut.

1. fine-tune the MPNet teacher (reused when its run folder exists);
2. pick alpha and temperature on the validation split with a short sweep on the 3-layer student; the first
   sweep run fills a cold teacher-logit cache, and its seconds are the teacher's whole cost;
3. per seed, with the same epochs: MiniLM-L6 fine-tuned alone and distilled; the 3-layer cut alone and
   distilled;
4. everything on test, side by side (`distill evaluate` times the models interleaved).

Every run is reused when its folder exists, so an interrupted benchmark goes on where it stopped;
delete benchmarks/out/real-scale to start over. Needs `make install-teacher`.

    python benchmarks/real_scale.py [--seeds 1] [--epochs 2] [--teacher-epochs 2] [--report-only]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys

from common import OUT, distill, machine, pct, require_clinc, save, train_once
from reproduce_book import SWEEP

CONFIG = "configs/clinc-minilm-offline.yaml"
RUNS, CACHE = OUT / "real-scale", OUT / "real-scale" / "cache"
TEACHER = "mpnet-clinc"
STUDENTS = {"l6": ["--student", "minilm-l6"], "l3": ["--student", "minilm-l6", "--student-layers", "3"]}
LABELS = {"l6": "MiniLM-L6 (6 layers, 384 wide)", "l3": "MiniLM-L6 cut to 3 layers"}
TEACHER_LR = "4e-5"  # a BERT-base-size encoder takes a smaller step than MiniLM's 8e-5 (design.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="student epochs, the same alone and distilled")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--sweep-epochs", type=int, default=1)
    parser.add_argument("--report-only", action="store_true", help="the table from the runs that exist")
    args = parser.parse_args()
    require_clinc()
    common = ["--config", CONFIG, "--runs-dir", RUNS, "--cache-dir", CACHE]
    seeds = [42 + i for i in range(args.seeds)]
    results: dict = {"machine": machine(), "command": " ".join(sys.argv), "epochs": args.epochs, "seeds": seeds}

    def run(command: str, name: str, *flags) -> dict | None:
        if args.report_only:
            return train_once(command, RUNS, name, reuse_only=True)
        return train_once(command, RUNS, name, *common, *flags)

    # 1. The teacher.
    results["teacher"] = run(
        "finetune", TEACHER, "--student", "mpnet-base", "--epochs", args.teacher_epochs, "--learning-rate", TEACHER_LR
    )

    # 2. alpha and T on validation, with a cold teacher-logit cache for the first run.
    if not (RUNS / sweep_name(*SWEEP[0]) / "run.json").is_file():
        shutil.rmtree(CACHE / "teacher-logits", ignore_errors=True)
    sweep = []
    for alpha, temp in SWEEP:
        r = run(
            "distill", sweep_name(alpha, temp), *STUDENTS["l3"], "--teacher", TEACHER, "--alpha", alpha,
            "--temperature", temp, "--epochs", args.sweep_epochs,
        )  # fmt: skip
        if r:
            sweep.append({"alpha": alpha, "temperature": temp, "val_accuracy": r["metrics"]["accuracy"], "run": r})
    if not sweep:
        sys.exit("no sweep run yet: run without --report-only first")
    best = max(sweep, key=lambda s: s["val_accuracy"])
    results["sweep"] = [{k: v for k, v in s.items() if k != "run"} for s in sweep]
    results["chosen"] = {"alpha": best["alpha"], "temperature": best["temperature"]}
    results["teacher_cache_s"] = sweep[0]["run"]["teacher_cache_s"]

    # 3. The students, seed after seed: each finished seed is a complete row.
    kd = ["--teacher", TEACHER, "--alpha", best["alpha"], "--temperature", best["temperature"]]
    for seed in seeds:
        for key, flags in STUDENTS.items():
            same = [*flags, "--seed", seed, "--epochs", args.epochs]
            results[f"{key}-alone-s{seed}"] = run("finetune", f"{key}-alone-s{seed}", *same)
            results[f"{key}-distilled-s{seed}"] = run("distill", f"{key}-distilled-s{seed}", *same, *kd)
    done = [s for s in seeds if all(results.get(f"{k}-{m}-s{s}") for k in STUDENTS for m in ("alone", "distilled"))]
    results["seeds_done"] = done

    # 4. Test, side by side.
    models = [TEACHER, *(f"{k}-{m}-s{s}" for s in done for k in STUDENTS for m in ("alone", "distilled"))]
    results["evaluation"] = distill(
        "evaluate", *models, "--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test",
        "--output", OUT / "real_scale_eval.json",
    )  # fmt: skip
    save("real_scale", results)
    print(summary(results))


def sweep_name(alpha: float, temp: float) -> str:
    return f"sweep-a{alpha}-t{temp:g}"


def summary(results: dict) -> str:
    """The markdown tables for BENCHMARKS.md: mean ± half the range over the seeds done."""
    by_name = {m["model"]: m for m in results["evaluation"]["models"]}
    seeds, teacher = results["seeds_done"], by_name[TEACHER]

    def agg(prefix: str, key: str, rule: bool = False) -> str:
        vals = [(by_name[f"{prefix}-s{s}"]["oos_rule"] if rule else by_name[f"{prefix}-s{s}"])[key] for s in seeds]
        mean, spread = statistics.fmean(vals), (max(vals) - min(vals)) / 2
        return pct(mean) + (f" ± {spread * 100:.2f}" if len(seeds) > 1 else "")

    def row(label: str, prefix: str | None, train_s: str) -> str:
        m = by_name[f"{prefix}-s{seeds[0]}"] if prefix else teacher
        cells = (
            [agg(prefix, k) for k in ("accuracy", "in_scope_accuracy", "oos_recall")] + [agg(prefix, "accuracy", True)]
            if prefix
            else [pct(m[k]) for k in ("accuracy", "in_scope_accuracy", "oos_recall")] + [pct(m["oos_rule"]["accuracy"])]
        )
        return (
            f"| {label} | {m['size_mb']:.1f} | {m['latency_ms_mean']:.2f} | {m['throughput_qps']:.0f} | "
            + " | ".join(cells)
            + f" | {train_s} |"
        )

    def train_s(prefix: str) -> str:
        return f"{statistics.fmean(results[f'{prefix}-s{s}']['train_s'] for s in seeds):.0f}"

    chosen = results["chosen"]
    lines = [
        "| model | size MB | latency ms | throughput q/s | accuracy % | in-scope % | oos recall % | "
        "accuracy with the oos rule % | training s |",
        "|---|---|---|---|---|---|---|---|---|",
        row("teacher: MPNet-base (all-mpnet-base-v2, 12 layers)", None, f"{results['teacher']['train_s']:.0f}"),
    ]
    for key, label in LABELS.items():
        lines.append(row(f"{label}, fine-tuned alone", f"{key}-alone", train_s(f"{key}-alone")))
        lines.append(
            row(
                f"{label}, distilled (alpha {chosen['alpha']}, T {chosen['temperature']:g})",
                f"{key}-distilled",
                train_s(f"{key}-distilled"),
            )
        )
    lines.append("")
    lines.append(f"Teacher-logit cache, one cold pass over the training set: {results['teacher_cache_s']:.0f} s.")
    lines.append("Sweep (3-layer student, validation accuracy): " + ", ".join(
        f"alpha {s['alpha']} T {s['temperature']:g}: {pct(s['val_accuracy'])}" for s in results["sweep"]
    ))  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
