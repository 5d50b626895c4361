"""Student levers chosen on validation across the suite (issue "Swappable parts"): each lever's values
trained beside the suite's own run of the same student, every other setting the tool's default, scored on
validation only (CLINC150's few-shot sets: CLINC150's validation split, which no run trained or chose on; the
one-domain sets: their own validation split, in-domain and general out-of-scope queries included).

  - kd_loss: MiniLM-L6 distilled from the suite's MPNet teacher with each term of ``kd_losses.py`` (``kl``
    is the suite's run);
  - hidden: the README's 3-layer student cut from the suite's MiniLM-L6 teacher, with hidden-state matching
    (``--hidden-weight``; 0 is the suite's run);
  - augment: the same student with N teacher-labelled variants of every training query (``--augment``);
  - mpnet-augment: MiniLM-L6 from the MPNet teacher, the same;
  - teacher-layer-decay: the MiniLM-L6 teacher (``finetune``) with layer-wise learning-rate decay (``--layer-decay``);
  - teacher-lr: the same teacher at other learning rates; student-lr, mpnet-student-lr, mpnet-lr: the 3-layer
    student, MiniLM-L6 from MPNet and the MPNet teacher at the one that won;
  - splice, mpnet-splice: the 3-layer student and MiniLM-L6 from MPNet with N spliced queries of every
    training query for the teacher to answer (``--splice``), beside what the data's recipe adds;
  - feature: the 3-layer student with the sentence-geometry term (``--feature-weight``);
  - alpha, temperature: the 3-layer student with another weight of the labels (``--alpha``) or temperature.

    python benchmarks/suite_levers.py --lever kd_loss [--datasets clinc-10shot,banking] [--values kl,mse]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from common import OUT, machine, pct, save, train_once
from suite import DATA, HERE, Data, common_flags, datasets, headline, minilm_teacher, mpnet_installed, tool_figures

# lever -> (the suite's run it varies, its teacher run, its student flags, {value: extra flags})
LEVERS = {
    "kd_loss": ("minilm-from-mpnet", "mpnet", ("--student", "minilm-l6"),
                {v: ("--kd-loss", v) for v in ("kl", "reverse_kl", "symmetric_kl", "mse")}),
    "hidden": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
               {"0": (), "1": ("--hidden-weight", "1"), "10": ("--hidden-weight", "10")}),
    "augment": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
                {n: ("--augment", n) for n in ("0", "2", "4")}),
    "mpnet-augment": ("minilm-from-mpnet", "mpnet", ("--student", "minilm-l6"),
                      {n: ("--augment", n) for n in ("0", "2", "4")}),
    # the MiniLM-L6 teacher itself (finetune, no teacher): the body held nearer its pretrained weights
    "teacher-layer-decay": ("teacher", None, ("--student", "minilm-l6"),
                            {d: ("--layer-decay", d) for d in ("1", "0.8", "0.6")}),
    "teacher-lr": ("teacher", None, ("--student", "minilm-l6"),
                   {lr: ("--learning-rate", lr) for lr in ("5e-5", "1e-4", "2e-4")}),
    # the few-shot students and the MPNet teacher at the learning rate that won for the MiniLM-L6 teacher (the
    # students with the few-shot default augment 4: their runs with 5e-5 are the augment levers' "4")
    "student-lr": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3", "--augment", "4"),
                   {"2e-4": ("--learning-rate", "2e-4")}),
    "mpnet-student-lr": ("minilm-from-mpnet", "mpnet", ("--student", "minilm-l6", "--augment", "4"),
                         {"2e-4": ("--learning-rate", "2e-4")}),
    "mpnet-lr": ("mpnet", None, ("--student", "mpnet-base"), {lr: ("--learning-rate", lr) for lr in ("5e-5", "2e-4")}),
    # spliced queries (a query's first words, another's last) for the teacher to answer, beside the variants
    "splice": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
               {n: ("--splice", n) for n in ("0", "2", "4", "8")}),
    "mpnet-splice": ("minilm-from-mpnet", "mpnet", ("--student", "minilm-l6"),
                     {n: ("--splice", n) for n in ("0", "2", "4")}),
    # the sentence-geometry term: the student's pooled vector matched to the teacher's, on every row
    "feature": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
                {w: ("--feature-weight", w) for w in ("0", "1")}),
    # the distillation's weights: the labels' share (alpha) and the softening of both answers (temperature)
    "alpha": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
              {a: ("--alpha", a) for a in ("0.5", "0.2", "0")}),
    "temperature": ("student", "teacher", ("--student", "{teacher}", "--student-layers", "3"),
                    {t: ("--temperature", t) for t in ("2", "4", "1")}),
}  # fmt: skip
# The value the suite's own run has, which that run stands for; None: every value is a run of its own (few-shot
# data now gets --augment by default, so the suite's run is no longer the run without it).
DEFAULTS = {"kd_loss": "kl", "hidden": "0", "augment": None, "mpnet-augment": None, "teacher-layer-decay": "1",
            "teacher-lr": None, "student-lr": None, "mpnet-student-lr": None, "mpnet-lr": "5e-5", "splice": "0",
            "mpnet-splice": "0", "feature": "0", "alpha": "0.5", "temperature": "2"}  # fmt: skip
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


def variant(data: Data, lever: str, value: str, seed: int = 42) -> Path:
    """The suite's run of the lever's student, trained again with ``value`` (the suite's own run for the
    default value)."""
    base, teacher_name, student, values = LEVERS[lever]
    runs = data.runs_dir
    name = base if value == DEFAULTS[lever] else f"{base}-{lever}-{value}"
    if seed != 42:
        name = f"{name}-seed{seed}"
    common = common_flags(data, seed)
    if teacher_name is None:  # the teacher's own lever: a finetune run
        train_once("finetune", runs, name, *student, *values[value], *common)
        return runs / name
    teacher = runs / teacher_name
    if teacher_name == "teacher" and seed == 42:  # the suite's MiniLM-L6 teacher, trained first if not there
        minilm_teacher(data)
    elif not (teacher / "run.json").is_file():
        sys.exit(f"{teacher}: run benchmarks/suite.py --datasets {data.name} first (its teacher)")
    flags = [f.format(teacher=teacher) for f in student]
    train_once("distill", runs, name, "--teacher", teacher, *flags, *values[value], *common)
    return runs / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lever", choices=sorted(LEVERS), required=True)
    parser.add_argument("--values", default=None, help="comma-separated (default: all the lever's)")
    parser.add_argument("--datasets", default="clinc-10shot,clinc-5shot,banking,credit_cards")
    parser.add_argument("--seed", type=int, default=42, help="another seed trains runs of its own (-seedN)")
    args = parser.parse_args()
    if LEVERS[args.lever][1] == "mpnet" and not mpnet_installed():
        sys.exit("the MPNet teacher needs make install-teacher")
    values = args.values.split(",") if args.values else list(LEVERS[args.lever][3])
    found = datasets()
    file = f"suite_levers_{args.lever}" + (f"_seed{args.seed}" if args.seed != 42 else "")
    earlier = OUT / f"{file}.json"  # other datasets' and values' figures are kept: one file a lever and seed
    results = json.loads(earlier.read_text()) if earlier.is_file() else {"validation": {}}
    results.update(machine=machine(), command=" ".join(sys.argv), seed=args.seed)
    for name in args.datasets.split(","):
        data, scored = found[name], validation_data(found[name])
        for value in values:
            record = json.loads((variant(data, args.lever, value, args.seed) / "run.json").read_text())
            figures = tool_figures(scored, data.runs_dir / record["name"])
            results["validation"].setdefault(name, {})[value] = {"train_s": record["train_s"], **figures}
            save(file, results)
    # every value this lever's file holds (earlier runs' too), a column each; "—" where a set lacks one
    shown = list(dict.fromkeys(v for by_value in results["validation"].values() for v in by_value))
    lines = [f"| validation % | {' | '.join(shown)} |", "|---" * (1 + len(shown)) + "|"]
    for name, by_value in results["validation"].items():
        cells = (pct(headline(by_value[v])) if v in by_value else "—" for v in shown)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    main()
