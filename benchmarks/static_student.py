"""A static student against the static peer a user would build with model2vec, on CLINC150 "plus".

  1. The peer, as a user would run it: `model2vec.distill` of the offline MiniLM-L6 folder (PCA 256), then
     `StaticModelForClassification().fit(train, X_val=validation)`, model2vec's defaults (hard labels, early
     stopping). Built here and saved as a model2vec pipeline.
  2. Ours: `distill distill --student static:<encoder>` from the MiniLM-L6 teacher of keep_pretrained.py,
     whose logits are cached: the same vectors as the peer (`static:minilm-l6`) or the fine-tuned teacher's
     own (`static:<teacher run>`), and the teacher's soft targets. Vectors, alpha and temperature are
     chosen on validation among a few candidates.
  3. The teacher, the peer and ours with `distill evaluate` on test (interleaved latency), plus the median
     latency of one query through each numpy pipeline, timed interleaved.

    python benchmarks/static_student.py      (about 15 minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from common import OUT, distill, machine, pct, require_clinc, save
from keep_pretrained import CACHE
from keep_pretrained import RUNS as TEACHER_RUNS
from keep_pretrained import train as train_teacher

HERE = OUT / "static"
os.environ["TQDM_DISABLE"] = "1"  # model2vec's own bars, in the peer's build
# (vectors, alpha, temperature), chosen on validation; "teacher" is the fine-tuned teacher's own body.
CANDIDATES = [
    ("minilm-l6", "0.5", "2"),
    ("minilm-l6", "0.2", "4"),
    ("minilm-l6", "0.0", "4"),
    ("teacher", "0.5", "2"),
    ("teacher", "0.8", "2"),
]


def build_peer(clinc) -> dict:
    """model2vec's own recipe with its defaults; the time of the whole build (its progress bars off)."""
    from model2vec.distill import distill as m2v_distill
    from model2vec.train import StaticModelForClassification

    from distill_cli.config import Config
    from distill_cli.data.columns import normalise
    from distill_cli.data.sources import read_source
    from distill_cli.modeling import resolve_model

    cfg = Config()
    splits, _, _ = normalise(read_source(str(clinc)), cfg)
    start = time.perf_counter()
    static = m2v_distill(resolve_model("minilm-l6", cfg).location, pca_dims=256)
    distill_s = time.perf_counter() - start
    classifier = StaticModelForClassification.from_static_model(model=static)
    classifier.fit(
        splits["train"]["text"], splits["train"]["label"],
        X_val=splits["validation"]["text"], y_val=splits["validation"]["label"],
    )  # fmt: skip
    build_s = time.perf_counter() - start
    classifier.to_pipeline().save_pretrained(str(HERE / "peer"))
    return {"distill_s": round(distill_s, 1), "build_s": round(build_s, 1)}


def median_latency_ms(folders: list, texts: list[str], runs: int = 2000) -> list[float]:
    """Median milliseconds of one query through each numpy pipeline, the pipelines taking turns."""
    from model2vec.inference import StaticModelPipeline

    pipelines = [StaticModelPipeline.from_pretrained(str(f)) for f in folders]
    timings = [[] for _ in pipelines]
    for run in range(runs):
        query = [texts[run % len(texts)]]
        for k in range(len(pipelines)):
            i = (run + k) % len(pipelines)
            start = time.perf_counter()
            pipelines[i].predict(query)
            timings[i].append((time.perf_counter() - start) * 1000)
    return [round(statistics.median(t), 4) for t in timings]


def main() -> None:
    clinc = require_clinc()
    teacher = TEACHER_RUNS / "minilm-probe"
    train_teacher("finetune", "minilm-probe", "--student", "minilm-l6", "--dataset", clinc)
    HERE.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "peer": build_peer(clinc), "ours": {}}
    common = ("--dataset", clinc, "--runs-dir", HERE, "--cache-dir", CACHE, "--teacher", teacher)
    for vectors, alpha, t in CANDIDATES:
        name = f"static-{vectors}-a{alpha}-t{t}"
        encoder = teacher if vectors == "teacher" else vectors
        start = time.perf_counter()
        distill("distill", *common, "--student", f"static:{encoder}", "--alpha", alpha, "--temperature", t,
                "--name", name, "--overwrite")  # fmt: skip
        record = json.loads((HERE / name / "run.json").read_text())
        record["build_s"] = round(time.perf_counter() - start, 1)
        results["ours"][name] = record
    best = max(results["ours"], key=lambda n: results["ours"][n]["metrics"]["accuracy"])
    results["best"] = best
    results["evaluation"] = distill(
        "evaluate", teacher, HERE / "peer", HERE / best, "--dataset", clinc, "--cache-dir", CACHE,
        "--split", "test", "--latency-runs", "300",
    )  # fmt: skip
    queries = [q for q, _ in json.loads(clinc.read_text())["test"][:500]]
    results["median_ms"] = dict(zip(("peer", "ours"), median_latency_ms([HERE / "peer", HERE / best], queries)))
    save("static_student", results)
    print(summary(results))


def summary(results: dict) -> str:
    lines = [
        "| candidate (validation decides) | alpha | T | validation acc. % | epochs run | build s (with new vectors) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["ours"].items():
        lines.append(
            f"| {name} | {r['config']['alpha']} | {r['config']['temperature']} | {pct(r['metrics']['accuracy'])} "
            f"| {len(r['epochs'])} | {r['build_s']:.0f} |"
        )
    lines += [
        "",
        "| model | test acc. % | in-scope % | OOS recall % | with the OOS rule: acc. % | in-scope % | OOS recall % "
        "| latency ms (mean, p95) | median ms, numpy pipeline | size MB | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    teacher, peer, ours = results["evaluation"]["models"]
    medians = results["median_ms"]
    builds = ("—", f"{results['peer']['build_s']:.0f}", f"{results['ours'][results['best']]['build_s']:.0f}")
    for label, m, median, build in zip(
        ("teacher: MiniLM-L6 fine-tuned", "peer: model2vec, hard labels, its defaults", "ours: static student"),
        (teacher, peer, ours),
        ("—", medians["peer"], medians["ours"]),
        builds,
    ):
        rule = m.get("oos_rule") or {}
        lines.append(
            f"| {label} | {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} | {pct(m['oos_recall'])} "
            f"| {pct(rule.get('accuracy'))} | {pct(rule.get('in_scope_accuracy'))} | {pct(rule.get('oos_recall'))} "
            f"| {m['latency_ms_mean']:.3f}, {m['latency_ms_p95']:.3f} | {median} | {m['size_mb']:.1f} | {build} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
