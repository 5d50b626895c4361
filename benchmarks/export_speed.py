"""The book's speed story, measured: the student as PyTorch fp32, ONNX fp32, ONNX int8 and ONNX int8 with a
trimmed vocabulary, beside the teacher, on CLINC150 "plus" test; latency timed round-robin by `evaluate`.

It exports the runs of `keep_pretrained.py` (run that first):
    python benchmarks/export_speed.py
"""

from __future__ import annotations

import json

from common import distill, machine, pct, require_clinc, save
from keep_pretrained import CACHE, RUNS

# The benchmark measures what each step loses: the export's own gate (1 pt by default) must not stop it.
MEASURE = ("--max-accuracy-drop", "100")
EXPORTS = {  # name: (parent run, export flags)
    "student-3-onnx": ("student-3", ()),
    "student-3-int8": ("student-3", ("--quantize", "int8")),
    "student-3-int8-trim": ("student-3", ("--quantize", "int8", "--trim-vocab")),
    "teacher-6-int8-trim": ("minilm-probe", ("--quantize", "int8", "--trim-vocab")),
}


def main() -> None:
    clinc = require_clinc()
    results = {"machine": machine(), "exports": {}}
    for name, (parent, flags) in EXPORTS.items():
        where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--output", RUNS / name, "--overwrite")
        results["exports"][name] = distill("export", parent, *where, *flags, *MEASURE)
    models = ["minilm-probe", "student-3", *(str(RUNS / n) for n in EXPORTS)]
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--dataset", clinc, "--split", "test")
    results["evaluation"] = distill("evaluate", *models, *where, "--latency-runs", "300")
    save("export_speed", results)
    print(summary(results))


def summary(results: dict) -> str:
    models = results["evaluation"]["models"]
    teacher, student = models[0], models[1]
    lines = [
        "| model | size MB | latency ms | × teacher | × student | throughput q/s | accuracy % | in-scope % "
        "| OOS recall % | with the OOS rule % | agreement with the teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        rule = (m.get("oos_rule") or {}).get("accuracy")
        lines.append(
            f"| {m['model'].split('/')[-1]} | {m['size_mb']:.1f} "
            f"| {m['latency_ms_mean']:.2f} ± {m['latency_ms_std']:.2f} "
            f"| {m['latency_ms_mean'] / teacher['latency_ms_mean']:.3f} "
            f"| {m['latency_ms_mean'] / student['latency_ms_mean']:.2f} | {m['throughput_qps']:.0f} "
            f"| {pct(m['accuracy'])} | {pct(m['in_scope_accuracy'])} | {pct(m['oos_recall'])} | {pct(rule)} "
            f"| {m.get('agreement', 1.0):.4f} |"
        )
    lines.append("")
    for name, record in results["exports"].items():
        lines.append(f"- {name}: " + json.dumps(record["checks"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
