"""The real-scale table (issue "Students that beat every peer"): every model the tool trains on CLINC150
"plus" beside the peer of its size, in one run, each given the tool's out-of-scope rule.

The tool's models, trained unless their run exists (in benchmarks/out/mpnet-scores, beside the runs of
mpnet_scores.py and longer_training.py, whose recipe this is: configs/clinc-minilm-offline.yaml):
  - the teacher: MPNet-base (`mpnet-base`) fine-tuned 2 epochs at lr 4e-5;
  - per seed, for the recipe's 8 epochs (distill's default for a transformer student): MiniLM-L6 and its
    3-layer cut distilled from the teacher (alpha 0.5, T 2: the tool's defaults) and fine-tuned alone for
    the same epochs;
  - MiniLM-L6 fine-tuned with nothing but the data (`distill finetune --student minilm-l6`, 3 epochs: the
    run of open_set.py);
  - the static student of static_student.py's winning recipe (STATIC), distilled and fine-tuned alone;
  - the int8 ONNX export of the first seed's distilled MiniLM-L6 and 3-layer students.
The peers, built in this run, given the rule by the tool's own functions (`open_set.scored`):
  - frozen all-mpnet-base-v2 and frozen all-MiniLM-L6-v2, mean pooling, L2-normalised,
    `LogisticRegression(C)`, C chosen on validation from 1, 10, 100;
  - model2vec's `distill` (PCA 256) of all-MiniLM-L6-v2 and of all-mpnet-base-v2, each with
    `StaticModelForClassification().fit(train, X_val=validation)` and its defaults.
Then every model of the tool on test in one `distill evaluate` (latency interleaved), and the static
pipelines' median latency, timed in turns. Needs `make install-teacher`.

    python benchmarks/real_scale.py [--seeds 2] [--distilled-seeds 3] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from common import CLINC, OUT, distill, frozen_encoder, machine, pct, require_clinc, save, train_once
from mpnet_scores import CACHE, CONFIG, RUNS
from open_set import RUNS as OPEN_SET_RUNS
from open_set import peers as probe_peers
from static_student import median_latency_ms, peer_with_rule

TEACHER = "mpnet-plus"
EPOCHS = "8"
KD = ("--teacher", TEACHER, "--alpha", "0.5", "--temperature", "2")
STUDENTS = {"minilm": ("--student", "minilm-l6"), "minilm3": ("--student", "minilm-l6", "--student-layers", "3")}
# The static recipe static_student.py chose on validation: all-MiniLM-L6-v2's vectors (the model2vec peer's),
# the static defaults, two augmented variants of every query labelled by the teacher (distilled only: the
# variants have no labels).
STATIC = ("--student", "static:minilm-l6")
STATIC_KD = ("--augment", "2")
PEERS = {"mpnet": "mpnet-base", "minilm": "minilm-l6"}


def names(seed: int) -> dict[str, str]:
    """The runs of one seed (the first seed's are the runs longer_training.py made)."""
    tail = "" if seed == 42 else f"-s{seed}"
    return {f"{key}-{kind}": f"{key}-{'from-mpnet' if kind == 'distilled' else 'plus'}-{EPOCHS}ep{tail}"
            for key in STUDENTS for kind in ("distilled", "alone")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1, help="seeds of every student")
    parser.add_argument("--distilled-seeds", type=int, default=0, help="seeds of the distilled MiniLM-L6, if more")
    parser.add_argument("--report-only", action="store_true", help="the table from the runs and results that exist")
    args = parser.parse_args()
    require_clinc()
    if args.report_only:
        print(summary(json.loads((OUT / "real_scale.json").read_text())))
        return
    seeds = [42 + i for i in range(max(args.seeds, args.distilled_seeds))]
    results: dict = {"machine": machine(), "command": " ".join(sys.argv), "epochs": EPOCHS, "seeds": seeds}
    common = ("--config", CONFIG, "--cache-dir", CACHE)
    results["runs"] = runs = {
        "teacher": train_once("finetune", RUNS, TEACHER, "--student", "mpnet-base", "--learning-rate", "4e-5",
                              "--epochs", "2", *common),  # fmt: skip
        "minilm-defaults": train_once("finetune", OPEN_SET_RUNS, "minilm-plus", "--dataset", CLINC, "--student",
                                      "minilm-l6", "--cache-dir", CACHE),  # fmt: skip
        # Static students take their own defaults (learning rate, batch, epochs), so not the config's.
        "static-distilled": train_once("distill", RUNS, "static-from-mpnet", "--dataset", CLINC, "--cache-dir", CACHE,
                                       "--teacher", RUNS / TEACHER, *STATIC, *STATIC_KD),  # fmt: skip
        "static-alone": train_once("finetune", RUNS, "static-plus", "--dataset", CLINC, "--cache-dir", CACHE, *STATIC),
    }
    for i, seed in enumerate(seeds):
        for key, name in names(seed).items():
            if i >= args.seeds and key != "minilm-distilled":
                continue
            flags = (*STUDENTS[key.rsplit("-", 1)[0]], "--epochs", EPOCHS, "--seed", str(seed), *common)
            distilled = key.endswith("distilled")
            runs[f"{key}-s{seed}"] = train_once("distill" if distilled else "finetune", RUNS, name, *flags,
                                                *(KD if distilled else ()))  # fmt: skip
    folders = {k: RUNS / r["name"] if k != "minilm-defaults" else OPEN_SET_RUNS / r["name"] for k, r in runs.items()}
    for key in ("minilm-distilled", "minilm3-distilled"):  # the int8 ONNX export of the first seed's students
        source = folders[f"{key}-s{seeds[0]}"]
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
    statics = {"static": folders["static-distilled"]}
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
    ev, seeds = results["evaluation"], results["seeds"]

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

    rows = [("110M", "MPNet fine-tuned 2 epochs (the teacher)", cells([ev["teacher"]]))]
    rows.append(("110M", "peer: frozen MPNet + LogisticRegression", peer(results["peers"]["probe-mpnet"], "")))
    labels = {"minilm": ("22M", "MiniLM-L6"), "minilm3": ("3 layers", "MiniLM-L6 cut to 3 layers")}
    for key, (size, label) in labels.items():
        for kind, what in (("distilled", "distilled from MPNet"), ("alone", "fine-tuned alone")):
            rows.append((size, f"{label} {what}, {results['epochs']} epochs",
                         cells([ev[f"{key}-{kind}-s{s}"] for s in seeds if f"{key}-{kind}-s{s}" in ev])))  # fmt: skip
        rows.append((size, f"{label} distilled, int8 ONNX (seed {seeds[0]})", cells([ev[f"{key}-distilled-int8"]])))
        if key == "minilm":
            rows.append((size, "MiniLM-L6 fine-tuned with the defaults (3 epochs)", cells([ev["minilm-defaults"]])))
        rows.append((size, "peer: frozen MiniLM-L6 + LogisticRegression", peer(results["peers"]["probe-minilm"], "")))
    for kind, what in (("distilled", "distilled from MPNet, --augment 2"), ("alone", "fine-tuned alone")):
        model = ev[f"static-{kind}"]
        row = cells([model])
        if kind == "distilled":
            row[6] += f"; {results['median_ms']['static']:.3f} (median, numpy)"
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
