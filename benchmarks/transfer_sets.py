"""Beyond the labelled set: a teacher-labelled transfer set, and augmentation, on CLINC150 from ../shared.

1. Few labels, many logs. Labelled: `data_small.json` (50 queries an intent). Transfer set: the training
   queries of `data_full.json` that are not in the small set, labels dropped (one per line in a .txt).
   Validation and test: the small set's own (the same as full's). The teacher (MiniLM-L6) is fine-tuned on
   the small set alone: it never sees the transfer set's labels. Students, all the 3-layer cut of the
   pretrained MiniLM-L6 with the same epochs: fine-tuned on small; distilled on small; distilled on small
   plus the transfer set; and the ceiling, fine-tuned on full with its labels. A static student
   (`static:<teacher>`) distilled on small, and on small plus the transfer set.
2. Full data plus augmentation. On "plus": the 3-layer cut of the MiniLM-L6 teacher of keep_pretrained.py,
   distilled with and without `--augment N`, the same epochs and seed. The teacher's cost of the extra rows
   is paid once: the static students of part 1 reuse the logits their transformer peers cached (zero).
3. Everything on test with `distill evaluate`.

Runs that exist are reused; delete benchmarks/out/transfer to start over.
    python benchmarks/transfer_sets.py [--epochs 2] [--augment 2]      (about 30 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys

from common import OUT, REPO, distill, machine, pct, require_clinc, save, train_once
from keep_pretrained import RUNS as TEACHER_RUNS
from keep_pretrained import train as train_plus_teacher

CLINC = REPO.parent / "shared" / "datasets" / "clinc150"
SMALL, FULL = CLINC / "data_small.json", CLINC / "data_full.json"
HERE = OUT / "transfer"
RUNS, CACHE = HERE / "runs", HERE / "cache"
CONFIG = "configs/clinc-minilm-offline.yaml"
STUDENT = ["--student", "minilm-l6", "--student-layers", "3"]


def transfer_file() -> str:
    """The training queries of data_full that the small set does not hold, one per line, labels dropped."""
    small, full = json.loads(SMALL.read_text()), json.loads(FULL.read_text())
    labelled = {text for split in ("train", "oos_train") for text, _ in small[split]}
    texts = [text for split in ("train", "oos_train") for text, _ in full[split] if text not in labelled]
    path = HERE / "full-minus-small.txt"
    HERE.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(texts) + "\n")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="every student's epochs, and the small teacher's")
    parser.add_argument("--augment", type=int, default=2, help="variants per labelled query in part 2")
    args = parser.parse_args()
    require_clinc()
    logs = transfer_file()
    epochs = ["--epochs", str(args.epochs)]
    base = ["--config", CONFIG, "--cache-dir", CACHE, *epochs]
    small = [*base, "--dataset", SMALL]
    results: dict = {"machine": machine(), "command": " ".join(sys.argv), "epochs": args.epochs}

    def run(command: str, name: str, *flags) -> dict:
        return train_once(command, RUNS, name, *flags)

    # 1. Few labels, many logs.
    teacher = ["--teacher", "small-teacher"]
    kd = ["--alpha", "0.12", "--temperature", "7"]  # these rows were measured with it (BENCHMARKS.md)
    # A static student takes its own defaults (learning rate, epochs with early stopping: static.py), not the
    # transformer recipe of the config; the same max_length keeps the teacher-logit cache key the same.
    static = ["--cache-dir", CACHE, "--dataset", SMALL, "--max-length", "64", *teacher,
              "--student", "static:small-teacher", "--alpha", "0.5", "--temperature", "2"]  # fmt: skip
    rows = {
        "small-teacher": run("finetune", "small-teacher", *small, "--student", "minilm-l6"),
        "alone-small": run("finetune", "alone-small", *small, *STUDENT),
        "distilled-small": run("distill", "distilled-small", *small, *STUDENT, *teacher, *kd),
        "distilled-transfer": run("distill", "distilled-transfer", *small, *STUDENT, *teacher, *kd,
                                  "--transfer-set", logs),
        "alone-full": run("finetune", "alone-full", *base, "--dataset", FULL, *STUDENT),
        "static-small": run("distill", "static-small", *static),
        "static-transfer": run("distill", "static-transfer", *static, "--transfer-set", logs),
    }
    results["part1"] = {name: {k: r[k] for k in ("train_s", "teacher_cache_s", "rows")} for name, r in rows.items()}
    results["part1_eval"] = distill(
        "evaluate", *rows, "--runs-dir", RUNS, "--cache-dir", CACHE, "--dataset", SMALL, "--split", "test",
        "--output", HERE / "part1_eval.json", "--latency-runs", "20",
    )  # fmt: skip
    save("transfer_sets", results)  # part 1 stands on its own

    # 2. Full data, with and without augmentation: the keep_pretrained teacher, its 3-layer cut.
    train_plus_teacher("finetune", "minilm-probe", "--student", "minilm-l6", "--dataset", str(require_clinc()))
    plus_teacher = str(TEACHER_RUNS / "minilm-probe")
    plus = ["--cache-dir", CACHE, "--dataset", str(require_clinc()), *epochs, "--teacher", plus_teacher]
    cut = ["--student", plus_teacher, "--student-layers", "3", "--alpha", "0.5", "--temperature", "2"]
    aug = ["--augment", str(args.augment)]
    rows2 = {
        "plus-distilled": run("distill", "plus-distilled", *plus, *cut),
        "plus-augmented": run("distill", "plus-augmented", *plus, *cut, *aug),
    }
    results["part2"] = {name: {k: r[k] for k in ("train_s", "teacher_cache_s", "rows")} for name, r in rows2.items()}
    results["part2_eval"] = distill(
        "evaluate", plus_teacher, "plus-distilled", "plus-augmented", "--runs-dir", RUNS, "--cache-dir", CACHE,
        "--dataset", require_clinc(), "--split", "test", "--output", HERE / "part2_eval.json", "--latency-runs", "20",
    )  # fmt: skip
    save("transfer_sets", results)
    print(summary(results))


def summary(results: dict) -> str:
    """The markdown tables for BENCHMARKS.md."""

    def table(evaluation: dict, records: dict, labels: dict) -> list[str]:
        by_name = {m["model"].split("/")[-1]: m for m in evaluation["models"]}
        lines = [
            "| model | training rows | accuracy % | in-scope % | oos recall % | with the oos rule % | train s | "
            "teacher s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, label in labels.items():
            m, r = by_name[name], records.get(name, {})
            counts = r.get("rows")
            rows = f"{counts['labelled']:,} + {counts['transfer'] + counts['augmented']:,}" if counts else "labelled"
            rule = m.get("oos_rule") or {}
            lines.append(
                f"| {label} | {rows} | {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} | "
                f"{pct(m['oos_recall'])} | {pct(rule.get('accuracy'))} | {r.get('train_s', 0):.0f} | "
                f"{r.get('teacher_cache_s', 0):.0f} |"
            )
        return lines

    part1 = table(
        results["part1_eval"],
        results["part1"],
        {
            "small-teacher": "teacher: MiniLM-L6 fine-tuned on small",
            "alone-small": "3-layer student fine-tuned on small",
            "distilled-small": "3-layer student distilled on small",
            "distilled-transfer": "3-layer student distilled on small + transfer set",
            "alone-full": "ceiling: 3-layer student fine-tuned on full, with labels",
            "static-small": "static student distilled on small",
            "static-transfer": "static student distilled on small + transfer set",
        },
    )
    acc = {m["model"].split("/")[-1]: m["accuracy"] for m in results["part1_eval"]["models"]}
    gap = acc["alone-full"] - acc["alone-small"]
    closed = (acc["distilled-transfer"] - acc["alone-small"]) / gap if gap else float("nan")
    if "part2_eval" not in results:
        return "\n".join([*part1, "", f"Share of the small-to-full gap the transfer set closes: {closed * 100:.0f}%."])
    part2 = table(
        results["part2_eval"],
        results["part2"],
        {
            "minilm-probe": "teacher: MiniLM-L6 fine-tuned on plus",
            "plus-distilled": "3-layer student distilled",
            "plus-augmented": "3-layer student distilled, with --augment",
        },
    )
    cost = results["part2"]["plus-augmented"]["teacher_cache_s"]
    reuse = results["part1"]["static-transfer"]["teacher_cache_s"]
    return "\n".join(
        [
            *part1,
            "",
            f"Share of the small-to-full gap the transfer set closes: {closed * 100:.0f}%.",
            "",
            *part2,
            "",
            f"Teacher seconds for the augmented set: {cost:.0f} s. The same small + transfer rows a second time "
            f"(the static student after the 3-layer one): {reuse:.1f} s, read from the cache.",
        ]
    )


if __name__ == "__main__":
    main()
