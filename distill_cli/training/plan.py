"""The plan of a run: what ``finetune``, ``distill`` and each ``search`` trial will train, worked out once.

``make_plan`` reads the config and the command and derives, in one place, what the rest of the recipe
asks: the effective alpha (``finetune`` trains on the labels alone), whether the student is static,
whether the teacher's logits are needed, the process's rank, and the Trainer's arguments. Every step of
``recipe.py`` takes the plan instead of a config, a command and arguments side by side.

``preflight`` is the one check every training command runs before any compute: it reports every problem
it finds, in one line (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from distill_cli import modeling, precision
from distill_cli.config import Config
from distill_cli.data.manifest import Manifest
from distill_cli.data.transfer import check_transfer_file
from distill_cli.errors import UsageError
from distill_cli.metrics import EXPECTED
from distill_cli.search_space import SearchSettings
from distill_cli.static import DISTILL_AUGMENT, DISTILL_SPLICE, encoder_spec
from distill_cli.static import SEARCH_DEFAULTS as STATIC_SEARCH_DEFAULTS
from distill_cli.static import with_defaults as static_defaults
from distill_cli.training.trainer import DistillationTrainingArguments, recipe_arguments


@dataclass(frozen=True)
class Plan:
    """What one run trains, derived once from its config and command."""

    cfg: Config  # the effective config (a static student's defaults filled in)
    command: str  # "finetune" or "distill" (a search trial trains as "distill")
    args: DistillationTrainingArguments  # the Trainer's; its output_dir is set once the run folder is known
    static: bool  # the student is static:<encoder>
    alpha: float  # the weight of the labels' cross-entropy: 1 for finetune
    teacher_logits: bool  # the teacher's logits are needed (some alpha < 1: this run's, or a search's lowest)
    search: SearchSettings | None = None  # the study's space, for a search
    recipe: str | None = None  # what the data made the recipe (``data_defaults``), in one line; None: nothing

    @property
    def rank(self) -> int:
        return self.args.process_index

    @property
    def world_size(self) -> int:
        return self.args.world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def for_trial(self, params: dict, output_dir: Path) -> Plan:
        """A search trial's plan: the study's, with the trial's values, training without checkpoints."""
        cfg = self.cfg.model_copy(update=params)
        args = training_arguments(cfg, cfg.alpha, self.static, output_dir, checkpoints=False)
        return replace(self, cfg=cfg, args=args, alpha=cfg.alpha)


# A transformer student distills for 8 epochs unless told otherwise: on CLINC150 its validation accuracy
# with the rule still rose at 8 (BENCHMARKS.md, "Longer training"); the best epoch is kept, and patience
# stops a run that no longer improves. (Fine-tuning keeps the Trainer's 3.)
DISTILL_EPOCHS = 8


def make_plan(
    cfg: Config, command: str, search: SearchSettings | None = None, data: Manifest | None = None,
    width: int | None = None,
) -> Plan:  # fmt: skip
    """The plan of ``finetune``, ``distill`` or (with ``search``, the study's settings) a search; with ``data``
    (the prepared dataset's manifest) and the student's ``width`` (hidden size), with the recipe they call for
    where the config leaves it unset."""
    static = encoder_spec(cfg.student) is not None
    cfg, recipe = data_defaults(cfg, data, static, command, width) if search is None else (cfg, None)
    if command == "distill":
        cfg = distill_defaults(cfg, static, search is not None)
    cfg = static_defaults(cfg)
    if search is None and cfg.keep_best_epoch and cfg.patience is None:
        # The patience this run stops with, so that run.json records the value used, not null.
        cfg = cfg.model_copy(update={"patience": cfg.effective_patience(static)})
    if static and search is not None:  # the ranges a static student trains in, where the space gives none
        defaults = {k: v for k, v in STATIC_SEARCH_DEFAULTS.items() if k not in search.model_fields_set}
        search = search.model_copy(update=defaults)
    alpha = cfg.alpha if command == "distill" else 1.0
    check_precision(cfg)
    lowest = search.alpha[0] if search is not None and search.alpha is not None else alpha
    args = training_arguments(cfg, alpha, static)
    teacher = bool(cfg.teacher or cfg.teacher_labels)
    return Plan(cfg, command, args, static, alpha, teacher_logits=teacher and lowest < 1.0, search=search,
                recipe=recipe)  # fmt: skip


def for_data(plan: Plan, cfg: Config, data: Manifest, width: int | None = None) -> Plan:
    """``plan`` (made from ``cfg`` before the data was read) made again with the recipe ``data`` and a student of
    hidden size ``width`` call for, writing into the same run folder."""
    adapted = make_plan(cfg, plan.command, plan.search, data, width)
    adapted.args.output_dir = plan.args.output_dir
    return adapted


# Few-shot data (``Manifest.few_shot``: at most 15 training queries an intent) trains a transformer with these,
# where the config and flags leave them unset (BENCHMARKS.md, "The suite"): 8 epochs, the last kept (a
# validation split carved from a few queries an intent holds one or two of each: too few to choose an epoch
# by, enough to set the fallback's threshold), and the supervised contrastive term.
FEW_SHOT_RECIPE = {"epochs": 8, "keep_best_epoch": False, "contrastive_weight": 1.0}
# ... and a small student (hidden size at most ``SMALL_WIDTH``: MiniLM-L6 and its cuts) learns at 2e-4, not the
# config's 5e-5: on CLINC150's few-shot validation (5 / 10 an intent) the MiniLM-L6 teacher 87.33 -> 88.80 and
# 91.90 -> 93.03, its 3-layer student 84.50 -> 85.17 and 90.07 -> 90.97, MiniLM-L6 from MPNet 89.10 -> 89.83 and
# 92.77 -> 93.07; the 110M MPNet teacher (768 wide) lost at that rate, 92.20 -> 91.67 (BENCHMARKS.md).
FEW_SHOT_SMALL = {"learning_rate": 2e-4}
SMALL_WIDTH = 384
# ... and a student distilled from a teacher model learns from the teacher's answers on variants of every query
# too (``--augment``): with a few queries an intent they won on CLINC150's few-shot validation for both the
# MPNet teacher's MiniLM-L6 and the 3-layer cut (BENCHMARKS.md, "Student levers").
FEW_SHOT_DISTILL = {"augment": 4}
# ... and a student cut from its teacher (its own layers) learns from the teacher's answers on spliced queries too
# (``--splice``: a query's first words joined to another's last): on few-shot validation the 3-layer cut of the
# MiniLM-L6 teacher gained on CLINC150 5-shot 85.10 -> 85.87 and 10-shot 91.13 -> 91.80, and with the rule on 5
# queries an intent of banking 75.55 -> 82.27 and of credit cards 84.64 -> 86.45 (BENCHMARKS.md, "Student levers").
FEW_SHOT_CUT = {"splice": 4}
# Open-set data (``Manifest.open_set``: out-of-scope queries in validation or test, none in train) gives a student
# other than its teacher's own layers the teacher's answers on variants of every query, whatever the number an
# intent: such a student sees only in-scope queries and learns the teacher's confidence on them alone; the
# variants show it where the teacher is unsure. On the one-domain open-set sets' validation, MiniLM-L6 from MPNet
# with the rule, seeds 42 / 43: banking 81.8 -> 83.7 / 79.6 -> 83.6, credit cards 81.8 -> 89.4 / 81.4 -> 83.9,
# in-domain AUROC up in all four. A student cut from its teacher starts with the teacher's confidence and did not
# gain (the 3-layer cut of MiniLM-L6: +3.6, -0.5, -4.3, -1.7; BENCHMARKS.md, "Student levers").
OPEN_SET_DISTILL = {"augment": 4}


def recipe_defaults() -> str:
    """What the plan sets where the config leaves it unset (the data's recipes, distill's epochs, a static
    student's variants), as one JSON string: part of ``distill run``'s step digests, so that a version that
    changes them redoes the steps."""
    import json

    table = [FEW_SHOT_RECIPE, FEW_SHOT_SMALL, SMALL_WIDTH, FEW_SHOT_DISTILL, FEW_SHOT_CUT, OPEN_SET_DISTILL,
             DISTILL_EPOCHS, DISTILL_AUGMENT, DISTILL_SPLICE]  # fmt: skip
    return json.dumps(table, sort_keys=True)


def data_defaults(cfg: Config, data: Manifest | None, static: bool, command: str = "finetune", width=None):
    """``cfg`` with the recipe the data (and a student of hidden size ``width``) calls for, where the config and
    flags leave it unset, and one line saying what it set and why (None when the data calls for nothing). A
    static student keeps its own."""
    if data is None or static:
        return cfg, None
    recipe, why = {}, []
    teacher_answers = command == "distill" and cfg.teachers and cfg.alpha < 1 and cfg.teacher_mode == "cached"
    cut = cfg.student == cfg.lead_teacher  # the student is the teacher's own layers (or all of them)
    if data.few_shot:
        small = width is not None and width <= SMALL_WIDTH
        recipe.update(FEW_SHOT_RECIPE, **(FEW_SHOT_SMALL if small else {}))
        if teacher_answers:
            recipe.update(FEW_SHOT_DISTILL, **(FEW_SHOT_CUT if cut else {}))
        why.append(f"few-shot data ({data.per_intent:g} training queries an intent, median)"
                   + (f", a student {width} wide" if small else "")
                   + (", cut from its teacher" if teacher_answers and cut else ""))  # fmt: skip
    if data.open_set and teacher_answers and not cut:
        recipe.update(OPEN_SET_DISTILL)
        why.append("open-set data (out-of-scope queries in validation or test only) and a student other than the "
                   "teacher")  # fmt: skip
    unset = {k: v for k, v in recipe.items() if k not in cfg.model_fields_set}
    if not unset:
        return cfg, None
    settings = ", ".join(f"{k} {v}" for k, v in unset.items())
    return cfg.model_copy(update=unset), f"{' and '.join(why)}: {settings}"


def distill_defaults(cfg: Config, static: bool, searching: bool) -> Config:
    """What ``distill`` (and a search, for the epochs) does unless the config or a flag says otherwise: a
    transformer student trains ``DISTILL_EPOCHS``; a static one that learns from the teacher's answers
    (alpha < 1) also learns from ``DISTILL_AUGMENT`` variants and ``DISTILL_SPLICE`` spliced queries of every
    labelled query (each where the config or a flag leaves it unset)."""
    unset = lambda key: key not in cfg.model_fields_set  # noqa: E731
    if not static and unset("epochs"):
        return cfg.model_copy(update={"epochs": DISTILL_EPOCHS})
    if static and not searching and cfg.teacher and cfg.alpha < 1:
        rows = {"augment": DISTILL_AUGMENT, "splice": DISTILL_SPLICE}
        return cfg.model_copy(update={key: value for key, value in rows.items() if unset(key)})
    return cfg


def check_precision(cfg: Config) -> None:
    """fp16 without CUDA is refused (exit 2) before anything is built (``preflight`` says bf16 on the CPU)."""
    problem = precision.problem(cfg.precision)
    if problem:
        raise UsageError(problem)


def warn_precision(cfg: Config) -> None:
    """bf16 on the CPU is said once, before any compute."""
    if precision.resolve(cfg.precision) == "bf16" and not torch.cuda.is_available():
        from distill_cli.ui import warn

        warn("precision bf16 on the CPU: it works, but these CPUs have no bf16 arithmetic, so it is slower than fp32")


def training_arguments(
    cfg: Config, alpha: float, static: bool, output_dir: Path | None = None, checkpoints: bool = True
) -> DistillationTrainingArguments:
    """The config's recipe plus what every run of this tool sets (epoch checkpoints, no pickles, CPU).
    Without ``output_dir``, the run folder is set once its name is known on every rank."""
    keep_best = checkpoints and cfg.keep_best_epoch
    return DistillationTrainingArguments(
        output_dir=str(output_dir or cfg.runs_dir / ".pending"),
        **recipe_arguments(cfg),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        data_seed=cfg.seed,
        save_strategy="epoch" if checkpoints else "no",
        # The latest checkpoint (to resume from) and, when the best epoch is kept, the best one: with a limit
        # of 1 the Trainer would keep the best alone and delete the one an interrupted run resumes from.
        save_total_limit=2 if keep_best else 1,
        logging_strategy="steps",
        logging_steps=10,
        use_cpu=not torch.cuda.is_available(),
        **precision.training_arguments(precision.resolve(cfg.precision)),
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=False,
        alpha=alpha,
        transfer_weight=cfg.transfer_weight,
        contrastive_weight=cfg.contrastive_weight,
        kd_loss=cfg.kd_loss,
        layer_decay=cfg.layer_decay,
        hidden_weight=cfg.hidden_weight if cfg.teacher else 0.0,
        feature_weight=cfg.feature_weight if cfg.teacher else 0.0,
        **(best_epoch_arguments() if keep_best else {}),
        **(dict(label_names=["labels"]) if static else {}),  # its forward takes no labels: say where they are
    )


def best_epoch_arguments() -> dict:
    """A run (with checkpoints) keeps its best epoch by the selection metric (``metrics.EXPECTED``, the
    accuracy expected with the rule), and stops after ``patience`` epochs without a better one (the
    recipe adds the callback); a search trial trains for the epochs it was given and keeps the last."""
    return dict(load_best_model_at_end=True, metric_for_best_model=EXPECTED.key, greater_is_better=True)


# ------------------------------------------------------------------------------------------- preflight


def soft_label_problems(plan: Plan) -> list[str]:
    """What a teacher that is a file (``teacher_labels``) cannot do, and the file itself (it is there)."""
    cfg = plan.cfg
    if not cfg.teacher_labels:
        return []
    problems = []
    if cfg.teacher:
        problems.append("--teacher and --teacher-labels are two teachers: give one")
    if cfg.augment or cfg.splice:
        problems.append("--augment and --splice make queries that a file of labels does not cover: drop them")
    if cfg.feature_weight > 0:
        problems.append("--feature-weight matches a teacher model's sentence vectors: a file of labels has none")
    if cfg.teacher_mode == "online":
        problems.append("--teacher-labels is read once: drop --teacher-mode online")
    return problems


def hidden_problems(plan: Plan) -> list[str]:
    """Hidden-state matching needs one teacher model of the student's family (tokenizer and width are checked
    once the models' configs are read)."""
    cfg = plan.cfg
    if cfg.hidden_weight <= 0:
        return []
    if plan.static:
        return ["--hidden-weight matches a transformer's layers; a static student has none"]
    if plan.command != "distill" or len(cfg.teachers) != 1:
        return ["--hidden-weight needs distill with one teacher model (not an ensemble, nor --teacher-labels)"]
    return []


def ensemble_problems(cfg: Config) -> list[str]:
    """What an ensemble of teachers (``--teacher a --teacher b``) cannot do."""
    if len(cfg.teachers) < 2:
        return []
    problems = []
    if cfg.teacher_mode == "online":
        problems.append("an ensemble of teachers is cached (each member once): drop --teacher-mode online")
    if cfg.feature_weight > 0:
        problems.append("--feature-weight matches one teacher's sentence vectors, not an ensemble's")
    return problems


def preflight(plan: Plan, student: modeling.ModelRef | None = None) -> None:
    """Every problem of the plan that would waste compute, in one line (exit 2): the command's needs, the
    student against its settings and the search space, the teacher's mode, extra rows, files, trackers."""
    cfg, problems = plan.cfg, []
    warn_precision(cfg)
    if plan.command == "finetune" and cfg.alpha < 1.0:
        problems.append(
            f"alpha={cfg.alpha} needs a teacher: finetune trains on the labels alone (alpha 1); "
            "use `distill distill --teacher NAME` to distill"
        )
    if plan.command == "distill" and not (cfg.teacher or cfg.teacher_labels):
        what = "search" if plan.search is not None else "distill"
        problems.append(f"{what} needs a teacher: pass --teacher NAME or --teacher-labels FILE, or set one in a config")
    problems += soft_label_problems(plan) + ensemble_problems(cfg) + hidden_problems(plan)
    if plan.static and cfg.student_layers:
        problems.append("--student-layers cuts a transformer; a static student has no layers")
    if plan.static and cfg.layer_decay < 1:
        problems.append("--layer-decay sets a transformer's layers' rates; a static student has no layers")
    if plan.static and cfg.teacher_mode == "online":
        problems.append("a static student learns from cached teacher logits: drop --teacher-mode online")
    if plan.search is not None and cfg.teacher_mode != "cached":
        problems.append("search pays for the teacher once: it needs teacher_mode cached, not online")
    if cfg.feature_weight > 0 and (plan.command != "distill" or cfg.teacher_mode != "cached"):
        problems.append("--feature-weight needs distill with teacher_mode cached")
    if (cfg.transfer_set or cfg.augment or cfg.splice) and not plan.teacher_logits:
        problems.append(
            "--transfer-set, --augment and --splice add rows that only the teacher labels: use distill, alpha < 1"
        )
    problems += [p for p in (layer_range_problem(plan, student), *usage_problems(plan)) if p]
    if problems:
        raise UsageError("; ".join(problems))


def usage_problems(plan: Plan) -> list[str | None]:
    """The checks that raise on their own (a transfer file, the trackers), as problems to report together."""
    found = []
    from distill_cli.data.soft_labels import check_file

    checks = (
        lambda: check_transfer_file(plan.cfg.transfer_set),
        lambda: check_file(plan.cfg.teacher_labels),
        lambda: check_trackers(plan.cfg.report_to),
    )
    for check in checks:
        try:
            check()
        except UsageError as err:
            found.append(str(err))
    return found


def layer_range_problem(plan: Plan, student: modeling.ModelRef | None) -> str | None:
    """A search's ``student_layers`` range: none for a static student, and within the student's own layers
    (its config is read, not its weights)."""
    if plan.search is None or plan.search.student_layers is None:
        return None
    if plan.static:
        return "search.student_layers: a static student has no layers to search; set it to null"
    if student is None:
        return None
    have = getattr(modeling.load_model_config(student, plan.cfg), "num_hidden_layers", None)
    top = plan.search.student_layers[1]
    if have is not None and top > have:
        return f"search.student_layers: up to {top}, but the student has {have}"
    return None


def check_trackers(names: list[str]) -> None:
    """``report_to`` names that transformers knows and that are installed, before any compute."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    available = get_available_reporting_integrations()
    for name in names:
        if name == "all":
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            raise UsageError(f"report_to {name}: not a tracker transformers knows (none, all, {known})")
        if name not in available:
            raise UsageError(f"report_to {name}: its package is not installed (pip install {name})")
