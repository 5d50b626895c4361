"""Training levers for the 22M student's gap to its 110M teacher (issue "Students that beat every peer"), the
first three tried through a patched run (``--patched-distill LEVER``) so that each becomes a flag of the tool
only if it wins on validation:

- ``soup``: a greedy soup of the run's epoch weights (Wortsman et al. 2022). The run keeps a copy of the
  weights after every epoch; once training ends (the best epoch loaded, as the tool does) it tries the
  epochs in order of the selection quantity (the validation accuracy expected with the rule), each added
  to the average only if the average does not score lower, and keeps whichever won, the soup or the best
  epoch. Its trials go to ``benchmarks/out/student_levers_soup_trials_s<seed>.json``.
- ``seed-soup``: a greedy soup across seeds (Wortsman et al.'s soups are of runs, not epochs): seeds 42 and
  43 are trained as usual, then the run of ``--seed`` (44) is patched to score, after its own training, the
  weights the other seeds kept and to build the greedy soup of the three, as above, kept only if it wins.
  Its trials go to ``benchmarks/out/student_levers_seed-soup_trials_s<seed>.json``.
- ``layer-decay``: layer-wise learning-rate decay (as in ELECTRA and BEiT fine-tuning): the head at the
  run's learning rate, each encoder layer below it at ``DECAY`` times the one above, the embeddings
  lowest, so the body the pretrained encoder gave moves less than the new head.
- ``lr-5e-5`` and ``geometry-0.1``: flags of the tool, untried at 8 epochs: a lower learning rate than the
  config's 8e-5 (chosen at 2 epochs), and the sentence-geometry loss at a tenth of the weight that lost.
- ``splice-1``: a flag of the tool too: one spliced query of every labelled one (the start of one, the end
  of another), labelled by the teacher, which won for the static student (``static_splice.py``).

Each: MiniLM-L6 distilled from the MPNet teacher of `mpnet_scores.py` with the `distill` defaults (8 epochs,
alpha 0.5, T 2, its config), then `distill evaluate` on test. The run to compare with is the plain one of
the same seed ("Longer training" in BENCHMARKS.md: seed 42 kept 96.41 on validation).
Needs `make install-teacher`; runs that exist are reused.
    python benchmarks/student_levers.py --lever soup|layer-decay [--seed 42]   (about 25 minutes on 2 fast cores)
    python benchmarks/student_levers.py --lever seed-soup --seed 44            (three students: about 40 minutes)
    python benchmarks/student_levers.py --lever lr-5e-5|geometry-0.1|splice-1 [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from common import CLINC, OUT, distill, machine, require_clinc, save, train_once
from mpnet_scores import CACHE, RUNS, TEACHER, student_flags, train_teacher

SOUP_LOG = "DISTILL_BENCH_SOUP_LOG"  # where the patched run writes the soup's trials (JSON)
SOUP_RUNS = "DISTILL_BENCH_SOUP_RUNS"  # the other seeds' run folders, for the seed soup (os.pathsep between)
SOUPS = ("soup", "seed-soup")  # the levers that write a soup's trials to SOUP_LOG
SOUP_SEEDS = (42, 43)  # the seeds the seed soup's patched run averages with its own
DECAY = 0.9  # the layer-wise factor: the embeddings of a 6-layer body train at 0.9**7 = 0.48 of the head's rate


def greedy_soup(trainer, snapshots: list[tuple[float, dict]], names: list[str] | None = None) -> dict:
    """Load into ``trainer.model`` the greedy soup of ``snapshots`` (validation score, CPU state dict; named by
    ``names``, else by epoch), scored by ``trainer.evaluate``; returns the trials. The best single snapshot is
    the start, and stays if no average scores at least as well."""
    names = names or [f"epoch {i + 1}" for i in range(len(snapshots))]
    order = sorted(range(len(snapshots)), key=lambda i: -snapshots[i][0])
    best_score, chosen = snapshots[order[0]][0], [order[0]]
    trials = [{"members": [names[order[0]]], "score": best_score, "kept": True}]

    def mean(indices: list[int]) -> dict:
        states = [snapshots[i][1] for i in indices]
        return {k: (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v
                for k, v in states[0].items()}  # fmt: skip

    for i in order[1:]:
        trainer.model.load_state_dict(mean([*chosen, i]))
        score = validation_score(trainer)
        kept = score >= best_score
        trials.append({"members": [names[j] for j in sorted([*chosen, i])], "score": score, "kept": kept})
        print(f"soup {trials[-1]['members']}: {score:.5f} ({'kept' if kept else 'dropped'})", file=sys.stderr)
        if kept:
            best_score, chosen = score, [*chosen, i]
    uniform = None
    if len(snapshots) > 2:  # for the record: every member averaged, whatever the greedy order kept
        trainer.model.load_state_dict(mean(list(range(len(snapshots)))))
        uniform = validation_score(trainer)
    trainer.model.load_state_dict(mean(chosen))
    return {"trials": trials, "chosen": [names[j] for j in sorted(chosen)], "score": best_score,
            "single": snapshots[order[0]][0], "single_member": names[order[0]], "uniform": uniform}  # fmt: skip


def validation_score(trainer) -> float:
    """The selection quantity (the validation accuracy expected with the rule) of the loaded weights."""
    from distill_cli.metrics import EXPECTED

    return trainer.evaluate()[f"eval_{EXPECTED.key}"]  # evaluation runs without gradients


def patch_soup(recipe) -> None:
    """Keep each epoch's weights, and build the greedy soup after training (before the model is saved)."""
    from transformers import TrainerCallback

    from distill_cli.metrics import EXPECTED

    snapshots: list[tuple[float, dict]] = []

    class Snapshots(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if metrics and len(snapshots) < round(state.epoch or 0):  # epoch ends only, not the soup's own
                state_dict = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                snapshots.append((metrics[f"eval_{EXPECTED.key}"], state_dict))

    build, fit = recipe.build_trainer, recipe.fit

    def build_trainer(plan, model, setup, callbacks, *rest):
        return build(plan, model, setup, [*callbacks, Snapshots()], *rest)

    def fit_and_soup(trainer, run):
        seconds = fit(trainer, run)
        Path(os.environ[SOUP_LOG]).write_text(json.dumps(greedy_soup(trainer, snapshots), indent=2))
        return seconds

    recipe.build_trainer, recipe.fit = build_trainer, fit_and_soup


def patch_seed_soup(recipe) -> None:
    """After training (the best epoch loaded), score the weights the other seeds' runs kept, in this trainer,
    and build the greedy soup of them and this run's."""
    from safetensors.torch import load_file

    fit = recipe.fit

    def fit_and_soup(trainer, run):
        seconds = fit(trainer, run)
        own = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
        snapshots, names = [(validation_score(trainer), own)], [run.final.name]
        for folder in map(Path, os.environ[SOUP_RUNS].split(os.pathsep)):
            state = load_file(str(folder / "model.safetensors"))
            trainer.model.load_state_dict(state)  # strict: the same architecture, or this fails
            snapshots.append((validation_score(trainer), state))
            names.append(folder.name)
        Path(os.environ[SOUP_LOG]).write_text(json.dumps(greedy_soup(trainer, snapshots, names), indent=2))
        return seconds

    recipe.fit = fit_and_soup


def layer_depth(name: str, layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, ``layers + 1`` for what sits above (pooling, head)."""
    found = re.search(r"\.layer\.(\d+)\.", name)
    if found:
        return int(found.group(1)) + 1
    return 0 if ".embeddings." in name else layers + 1


def patch_layer_decay(recipe) -> None:
    """The optimizer's parameter groups by depth, each at ``DECAY ** (distance from the top)`` of the run's
    learning rate; weight decay as the ``Trainer`` applies it."""
    from distill_cli.training.trainer import DistillationTrainer

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        layers, lr = model.config.num_hidden_layers, self.args.learning_rate
        decayed = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            depth = layer_depth(name, layers)
            group = groups.setdefault((depth, name in decayed), {
                "params": [], "lr": lr * DECAY ** (layers + 1 - depth),
                "weight_decay": self.args.weight_decay if name in decayed else 0.0,
            })  # fmt: skip
            group["params"].append(param)
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(list(groups.values()), **kwargs)
        rates = sorted({round(g["lr"], 10) for g in groups.values()})
        print(f"layer-wise learning rates: {', '.join(f'{r:.2e}' for r in rates)}", file=sys.stderr)
        return self.optimizer

    DistillationTrainer.create_optimizer = create_optimizer


LEVERS = {"soup": patch_soup, "seed-soup": patch_seed_soup, "layer-decay": patch_layer_decay}
# Levers that are already flags of the tool: a plain run with them added.
FLAG_LEVERS = {"lr-5e-5": ("--learning-rate", "5e-5"), "geometry-0.1": ("--feature-weight", "0.1"),
               "splice-1": ("--splice", "1")}  # fmt: skip


def patched_distill(lever: str, argv: list[str]) -> None:
    """`distill ARGV` with ``lever`` patched into the recipe."""
    from distill_cli.cli import main
    from distill_cli.training import recipe

    LEVERS[lever](recipe)
    main(argv)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lever", choices=[*LEVERS, *FLAG_LEVERS], required=True)
    parser.add_argument("--seed", type=int, default=42, help="the student's seed")
    opts = parser.parse_args()
    require_clinc()
    results = {"machine": machine(), "command": " ".join(sys.argv), "lever": opts.lever}
    results["teacher"] = train_teacher()
    name = f"minilm-from-mpnet-{opts.lever}-8ep-s{opts.seed}"
    log = OUT / f"student_levers_{opts.lever}_trials_s{opts.seed}.json"
    env = {SOUP_LOG: str(log)} if opts.lever in SOUPS else {}
    models = [TEACHER, name]
    if opts.lever == "seed-soup":  # the other seeds, plain: the runs "Longer training" and the real-scale table use
        others = [f"minilm-from-mpnet-8ep-s{seed}" for seed in SOUP_SEEDS]
        for seed, other in zip(SOUP_SEEDS, others):
            results[other] = train_once("distill", RUNS, other, "--teacher", TEACHER, *student_flags(seed))
        env[SOUP_RUNS] = os.pathsep.join(str(RUNS / other) for other in others)
        models += others
    student = ("--teacher", TEACHER, *student_flags(opts.seed))
    if opts.lever in FLAG_LEVERS:
        results["student"] = train_once("distill", RUNS, name, *student, *FLAG_LEVERS[opts.lever])
    else:
        print(f"the next run is patched: {opts.lever}", file=sys.stderr)
        patched = [sys.executable, __file__, "--patched-distill", opts.lever]
        results["student"] = train_once("distill", RUNS, name, *student, env=env, entry=patched)
    if opts.lever in SOUPS:
        results["soup"] = json.loads(log.read_text())
        print(json.dumps(results["soup"], indent=2))
    where = ("--runs-dir", RUNS, "--cache-dir", CACHE, "--split", "test", "--dataset", CLINC, "--latency-runs", "5")
    results["evaluation"] = distill("evaluate", *models, *where)
    save(f"student_levers_{opts.lever}_s{opts.seed}", results)
    for m in results["evaluation"]["models"]:
        print(m["model"], m["accuracy"], m["oos_rule"])


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--patched-distill":
        patched_distill(sys.argv[2], sys.argv[3:])
    else:
        main()
