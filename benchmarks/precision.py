"""bf16 against fp32 on the CPU: the demo's teacher (`configs/demo.yaml`, MiniLM-L6 on the embedded demo
data) fine-tuned once in each precision, the same seed and epochs, then both evaluated side by side on test
(fp32 inference, timed round-robin). On these CPUs bf16 has no arithmetic of its own: the point is that it
works and keeps accuracy, not speed; on a GPU `precision: auto` is bf16.
    python benchmarks/precision.py
"""

from __future__ import annotations

import sys

from common import OUT, REPO, distill, machine, pct, save, train_once

RUNS = OUT / "precision"
CONFIG = REPO / "configs" / "demo.yaml"


def main() -> None:
    results = {"machine": machine(), "command": " ".join(sys.argv), "runs": {}}
    for half in ("fp32", "bf16"):
        record = train_once("finetune", RUNS, f"demo-{half}", "--config", CONFIG, "--precision", half)
        results["runs"][half] = {"train_s": record["train_s"], "precision": record["precision"]}
    results["evaluation"] = distill("evaluate", "demo-fp32", "demo-bf16", "--runs-dir", RUNS, "--config", CONFIG)
    save("precision", results)
    print(summary(results))


def summary(results: dict) -> str:
    models = {m["model"]: m for m in results["evaluation"]["models"]}
    lines = ["| precision | train s | test acc. % | with the rule % |", "|---|---|---|---|"]
    for half, run in results["runs"].items():
        m = models[f"demo-{half}"]
        rule = m.get("oos_rule") or {}
        cells = (run["precision"], f"{run['train_s']:.1f}", pct(m["accuracy"]), pct(rule.get("accuracy")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
