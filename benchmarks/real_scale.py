"""The real-scale table (issue "Students that beat every peer"): every model the tool trains on CLINC150
"plus" beside the peer of its size, in one run, each given the tool's out-of-scope rule.

The tool's models, trained unless their run exists (in benchmarks/out/mpnet-scores, beside the runs of
mpnet_scores.py and longer_training.py, whose recipe this is: configs/clinc-minilm-offline.yaml):
  - the teacher: MPNet-base (`mpnet-base`) fine-tuned 2 epochs at lr 4e-5;
  - per seed: MiniLM-L6 (8 epochs, distill's default for a transformer student) and its 3-layer cut (up to 12
    epochs, EPOCHS) distilled from the teacher (alpha 0.5, T 2: the tool's defaults) and fine-tuned alone
    for the same epochs;
  - MiniLM-L6 fine-tuned with nothing but the data (`distill finetune --student minilm-l6`, 3 epochs: the
    run of open_set.py);
  - per seed, the static student of the recipe static_student.py and static_splice.py chose (STATIC,
    STATIC_KD), distilled and alone;
  - the int8 ONNX export of the first seed's distilled MiniLM-L6 and 3-layer students.
The peers, built in this run, given the rule by the tool's own functions (`open_set.scored`):
  - frozen all-mpnet-base-v2 and frozen all-MiniLM-L6-v2, mean pooling, L2-normalised,
    `LogisticRegression(C)`, C chosen on validation from 1, 10, 100;
  - model2vec's `distill` (PCA 256) of all-MiniLM-L6-v2 and of all-mpnet-base-v2, each with
    `StaticModelForClassification().fit(train, X_val=validation)` and its defaults.
Then every model of the tool on test in one `distill evaluate` (latency interleaved), and the static
pipelines' median latency, timed in turns. Needs `make install-teacher`.

    python benchmarks/real_scale.py [--seeds 2] [--seeds-of minilm-alone=1 ...] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from common import CLINC, OUT, distill, frozen_encoder, machine, pct, require_clinc, save, train_once
from mpnet_scores import CACHE, CONFIG, RUNS, TEACHER, train_teacher
from open_set import RUNS as OPEN_SET_RUNS
from open_set import peers as probe_peers
from static_student import median_latency_ms, peer_with_rule

# Epochs of each transformer student, distilled and alone alike: 8 is distill's default; the 3-layer cut was
# still rising on validation at 8 and kept more with 12 (BENCHMARKS.md), so it gets 12.
EPOCHS = {"minilm": 8, "minilm3": 12}
KD = ("--teacher", TEACHER, "--alpha", "0.5", "--temperature", "2")
STUDENTS = {"minilm": ("--student", "minilm-l6"), "minilm3": ("--student", "minilm-l6", "--student-layers", "3")}
# The static recipe static_student.py and static_splice.py chose on validation: all-MiniLM-L6-v2's vectors
# (the model2vec peer's), the static defaults, two augmented variants and one spliced query of every query
# labelled by the teacher (distilled only: those rows have no labels).
STATIC = ("--student", "static:minilm-l6")
STATIC_KD = ("--augment", "2", "--splice", "1")
PEERS = {"mpnet": "mpnet-base", "minilm": "minilm-l6"}
# The students trained per seed, <student>-<distilled|alone>, the cheapest first (a seed's runs are trained
# before the next seed's).
ROWS = [f"{student}-{kind}" for student in ("static", "minilm3", "minilm") for kind in ("distilled", "alone")]


def run_name(row: str, seed: int) -> str:
    """The run of one row and seed (seed 42's are the runs longer_training.py and earlier tables made)."""
    student, kind = row.rsplit("-", 1)
    name = f"{student}-{'from-mpnet' if kind == 'distilled' else 'plus'}"
    name += "" if student == "static" else f"-{EPOCHS[student]}ep"
    name += "-splice1" if row == "static-distilled" else ""  # not the runs of the recipe before it
    return name + ("" if seed == 42 else f"-s{seed}")


def train_row(row: str, seed: int) -> dict:
    student, kind = row.rsplit("-", 1)
    distilled, seeded = kind == "distilled", ("--seed", str(seed))
    if student == "static":  # its own defaults (learning rate, batch, epochs), so not the config's
        flags = ("--dataset", CLINC, "--cache-dir", CACHE, *STATIC, *seeded)
        flags += ("--teacher", RUNS / TEACHER, *STATIC_KD) if distilled else ()
    else:
        flags = (*STUDENTS[student], "--epochs", str(EPOCHS[student]), *seeded, "--config", CONFIG, "--cache-dir",
                 CACHE, *(KD if distilled else ()))  # fmt: skip
    return train_once("distill" if distilled else "finetune", RUNS, run_name(row, seed), *flags)


def seeds_of(args) -> dict[str, list[int]]:
    """Each row's seeds: ``--seeds`` of them, or what ``--seeds-of ROW=N`` says."""
    counts = dict.fromkeys(ROWS, args.seeds)
    for item in args.seeds_of:
        row, _, n = item.partition("=")
        if row not in counts or not n.isdigit() or int(n) < 1:
            sys.exit(f"--seeds-of {item}: expected ROW=N with ROW one of {', '.join(ROWS)}")
        counts[row] = int(n)
    return {row: [42 + i for i in range(n)] for row, n in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1, help="seeds of every student")
    parser.add_argument("--seeds-of", action="append", default=[], metavar="ROW=N", help="seeds of one row")
    parser.add_argument("--report-only", action="store_true", help="the table from the runs and results that exist")
    args = parser.parse_args()
    require_clinc()
    if args.report_only:
        print(summary(json.loads((OUT / "real_scale.json").read_text())))
        return
    seeds = seeds_of(args)
    results: dict = {"machine": machine(), "command": " ".join(sys.argv), "epochs": EPOCHS, "seeds": seeds}
    results["runs"] = runs = {
        "teacher": train_teacher(),
        "minilm-defaults": train_once("finetune", OPEN_SET_RUNS, "minilm-plus", "--dataset", CLINC, "--student",
                                      "minilm-l6", "--cache-dir", CACHE),  # fmt: skip
    }
    for seed in sorted({seed for row_seeds in seeds.values() for seed in row_seeds}):
        for row in (row for row in ROWS if seed in seeds[row]):
            runs[f"{row}-s{seed}"] = train_row(row, seed)
    folders = {k: RUNS / r["name"] if k != "minilm-defaults" else OPEN_SET_RUNS / r["name"] for k, r in runs.items()}
    for key in ("minilm-distilled", "minilm3-distilled"):  # the int8 ONNX export of the first seed's students
        source = folders[f"{key}-s42"]
        folders[f"{key}-int8"] = target = source.with_name(source.name + "-int8")
        if not (target / "export.json").is_file():
            results[f"{key}-int8-export"] = distill("export", source, "--quantize", "int8", "--output", target,
                                                    "--dataset", CLINC, "--cache-dir", CACHE)  # fmt: skip
    where = ("--dataset", CLINC, "--cache-dir", CACHE, "--split", "test", "--latency-runs", "100")
    evaluation = distill("evaluate", *folders.values(), *where, "--output", OUT / "real_scale_eval.json")
    results["evaluation"] = dict(zip(folders, evaluation["models"]))
    results["peers"] = {}
    for key, alias in PEERS.items():
        print(f"$ the frozen {alias} probe", file=sys.stderr)
        results["peers"][f"probe-{key}"] = probe_peers({"plus": CLINC}, frozen_encoder(alias, max_length=128),
                                                       settings=("plus",))["plus"]  # fmt: skip
    statics = {"static": folders["static-distilled-s42"]}
    for key, alias in PEERS.items():
        print(f"$ model2vec on {alias}", file=sys.stderr)
        statics[f"model2vec-{key}"] = OUT / "static" / f"peer-{key}"
        results["peers"][f"model2vec-{key}"] = peer_with_rule(CLINC, alias, statics[f"model2vec-{key}"])
        files = statics[f"model2vec-{key}"].iterdir()
        results["peers"][f"model2vec-{key}"]["size_mb"] = sum(f.stat().st_size for f in files) / 1e6
    queries = [q for q, _ in json.loads(CLINC.read_text())["test"][:500]]
    results["median_ms"] = dict(zip(statics, median_latency_ms(list(statics.values()), queries)))
    save("real_scale", results)
    print(summary(results))


def summary(results: dict) -> str:
    """The markdown table for BENCHMARKS.md: by size, the tool's models (mean ± half the range over the
    seeds) and the peers, each by argmax and with its rule."""
    ev = results["evaluation"]

    def cells(models: list[dict]) -> list[str]:
        def agg(get) -> str:
            vals = [get(m) for m in models]
            spread = f" ± {(max(vals) - min(vals)) * 50:.2f}" if len(vals) > 1 else ""
            return pct(statistics.fmean(vals)) + spread

        rule = lambda k: lambda m: m["oos_rule"][k]  # noqa: E731
        first = models[0]
        return [str(len(models)), agg(lambda m: m["accuracy"]), agg(rule("accuracy")), agg(rule("in_scope_accuracy")),
                agg(rule("oos_recall")), first["oos_rule"]["score"], f"{first['latency_ms_mean']:.2f}",
                f"{first['size_mb']:.1f}"]  # fmt: skip

    def peer(p: dict, key: str) -> list[str]:
        median = results["median_ms"].get(key)
        return ["—", pct(p["argmax"]["accuracy"]), pct(p["with_rule"]["accuracy"]),
                pct(p["with_rule"]["in_scope_accuracy"]), pct(p["with_rule"]["oos_recall"]), p["rule"]["score"],
                f"{median:.3f} (median, numpy)" if median else "—",
                f"{p['size_mb']:.1f}" if "size_mb" in p else "—"]  # fmt: skip

    def seeded(row: str) -> list[str]:
        return cells([ev[f"{row}-s{seed}"] for seed in results["seeds"][row]])

    rows = [("110M", "MPNet fine-tuned 2 epochs (the teacher)", cells([ev["teacher"]]))]
    rows.append(("110M", "peer: frozen MPNet + LogisticRegression", peer(results["peers"]["probe-mpnet"], "")))
    labels = {"minilm": ("22M", "MiniLM-L6"), "minilm3": ("3 layers", "MiniLM-L6 cut to 3 layers")}
    for key, (size, label) in labels.items():
        for kind, what in (("distilled", "distilled from MPNet"), ("alone", "fine-tuned alone")):
            rows.append((size, f"{label} {what}, {results['epochs'][key]} epochs", seeded(f"{key}-{kind}")))
        rows.append((size, f"{label} distilled, int8 ONNX (seed 42)", cells([ev[f"{key}-distilled-int8"]])))
        if key == "minilm":
            rows.append((size, "MiniLM-L6 fine-tuned with the defaults (3 epochs)", cells([ev["minilm-defaults"]])))
        rows.append((size, "peer: frozen MiniLM-L6 + LogisticRegression", peer(results["peers"]["probe-minilm"], "")))
    for kind, what in (("distilled", "distilled from MPNet, --augment 2 --splice 1"), ("alone", "fine-tuned alone")):
        row = seeded(f"static-{kind}")
        if kind == "distilled":
            row[6] += f"; {results['median_ms']['static']:.3f} (median, numpy, seed 42)"
        rows.append(("static", f"static student (MiniLM-L6's vectors) {what}", row))
    for key, alias in PEERS.items():
        p = results["peers"][f"model2vec-{key}"]
        rows.append(("static", f"peer: model2vec ({alias} vectors) + its classifier", peer(p, f"model2vec-{key}")))
    lines = ["| size | model | seeds | argmax % | with the rule % | in-scope % | OOS recall % | score | latency ms "
             "| size MB |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {size} | {name} | " + " | ".join(row) + " |" for size, name, row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
