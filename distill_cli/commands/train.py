"""``distill finetune`` and ``distill distill``: one run of the training recipe (``training/recipe.py``).

``train`` reads top to bottom: make the plan and check it (before any compute), open the run folder,
set up models, data and teacher, build the student, fit its head, fit, and finish the run. ``finetune``
is the same recipe with ``alpha = 1`` and no teacher.
"""

from __future__ import annotations

from pathlib import Path

import torch

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.metrics import QUALITY_KEYS
from distill_cli.runs import RunFolder, RunRecord, open_run, run_path
from distill_cli.training.callbacks import RichProgress, StopOnSignal
from distill_cli.training.plan import Plan, make_plan, preflight
from distill_cli.training.recipe import (
    build_student,
    build_trainer,
    finish_training,
    fit,
    probe_head,
    shared_setup,
)
from distill_cli.training.setup import Trained
from distill_cli.ui import info


def train(cfg: Config, command: str, resume: bool = False, overwrite: bool = False) -> RunRecord:
    """Run ``finetune`` or ``distill`` end to end; the record is also written to the run's ``run.json``."""
    plan = make_plan(cfg, command)
    student_ref = modeling.resolve_model(plan.cfg.student, plan.cfg)
    preflight(plan, student_ref)
    run = open_run_folder(plan, resume, overwrite)
    try:
        plan, setup = shared_setup(plan, student_ref, cfg)
        if plan.recipe and plan.is_main:
            info(f"recipe: {plan.recipe}")
        model, layers_kept = build_student(plan, setup)
        if run.resume_from is None:
            probe_head(plan, model, setup)
        callbacks = [RichProgress(f"{command} {run.final.name}"), StopOnSignal()]
        trainer = build_trainer(plan, model, setup, callbacks, layers_kept)
        train_s = fit(trainer, run)
        record = finish_training(Trained(plan, trainer, layers_kept, train_s), run, setup)
        leave_process_group()
        return record
    finally:
        run.release()


def leave_process_group() -> None:
    """Under ``torchrun``, every process waits until the first has chosen the rule and moved the run into place,
    then leaves the process group before exiting: a process that exits with the group's threads still running
    can abort (``terminate called without an active exception``), which fails the whole launch (CI, 12-07)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def open_run_folder(plan: Plan, resume: bool, overwrite: bool) -> RunFolder:
    """The run folder, checked before any compute (see ``runs.open_run``); the Trainer writes into it."""
    cfg = plan.cfg
    final, generated = run_path(cfg, plan.command)
    final = Path(same_on_all_ranks(str(final)))
    settings, locks = cfg.training_settings(), cfg.cache_root() / "locks"
    run = open_run(final, generated, resume, overwrite, plan.is_main, plan.world_size, locks, settings)
    plan.args.output_dir = str(run.partial)
    return run


def same_on_all_ranks(text: str) -> str:
    """Rank 0's value of ``text`` on every rank (a generated run name holds a timestamp).
    Sent as a byte tensor: ``broadcast_object_list`` would pickle."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return text
    buf = torch.zeros(1024, dtype=torch.uint8)
    raw = text.encode()[:1024]
    buf[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    dist.broadcast(buf, src=0)
    return bytes(buf.tolist()).rstrip(b"\0").decode()


def summary(record: RunRecord) -> dict:
    """The ``--json`` object of ``finetune`` and ``distill``."""
    return record.model_dump(
        mode="json",
        include={"output", "train_s", "teacher_cache_s", "epochs", "metrics", "kept_epoch", "stopped_early", "rows",
                 "oos_rule"},  # fmt: skip
        exclude={"oos_rule": {"curve"}},
        exclude_none=True,
    )


def render(record: RunRecord) -> None:
    """The per-epoch validation table and the timings, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.metrics import EXPECTED, QUALITY
    from distill_cli.ui import console

    table = Table(title=f"{record.command} → {record.output}", title_justify="left")
    for col in ("epoch", "loss", *(m.short for m in QUALITY), EXPECTED.short):
        table.add_column(col, justify="right")
    for e in record.epochs:
        cells = [e.get(k) for k in ("epoch", "loss", *QUALITY_KEYS, EXPECTED.key)]
        table.add_row(*("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells))
    console.print(table)
    console.print(f"train {record.train_s:.1f}s, teacher logits {record.teacher_cache_s:.1f}s")
    if record.kept_epoch is not None and len(record.epochs) > 1:
        best = record.config.keep_best_epoch and record.kept_epoch != record.epochs[-1].get("epoch")
        stopped = ", stopped early (patience)" if record.stopped_early else ""
        console.print(f"kept epoch {record.kept_epoch:g}{' (the best expected accuracy)' if best else ''}{stopped}")
    if record.oos_rule is not None:
        console.print(f"out-of-scope rule (validation): {record.oos_rule.describe()}{score_choice(record.oos_rule)}")


def score_choice(rule) -> str:
    """How the rule's score was chosen: each candidate's validation AUROC, where it was chosen by them."""
    if not rule.score_auroc:
        return ""
    return "; AUROC " + ", ".join(f"{name} {value:.4f}" for name, value in rule.score_auroc.items())
