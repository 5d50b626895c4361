"""What ``run.json`` records of a trained run (``RunRecord``, in ``runs.py``), made from its plan, trainer
and setup."""

from __future__ import annotations

import platform

import torch
import transformers

from distill_cli import __version__, precision
from distill_cli.metrics import EXPECTED, QUALITY_KEYS
from distill_cli.oos import OOSRule
from distill_cli.pooling import MeanPoolingClassifier
from distill_cli.runs import DatasetRecord, RunFolder, RunRecord, StudentRecord, TeacherRecord
from distill_cli.training.setup import Setup, Trained
from distill_cli.training.teachers import Ensemble, LabelFile


def run_record(trained: Trained, run: RunFolder, setup: Setup, oos_rule: OOSRule | None) -> RunRecord:
    """The record of a run that finished training."""
    plan, trainer = trained.plan, trained.trainer
    history = trainer.state.log_history
    epochs = [epoch_metrics(h) for h in history if "eval_accuracy" in h]
    return RunRecord(
        command=plan.command,
        recipe=plan.recipe,
        output=str(run.final),
        name=run.final.name,
        config=plan.cfg.model_dump(),
        student=student_record(trained, setup),
        teacher=teacher_record(plan, setup),
        dataset=DatasetRecord.of(setup.prepared),
        labels=setup.prepared.model_labels,
        seed=plan.cfg.seed,
        world_size=plan.world_size,
        precision=precision.resolve(plan.cfg.precision),
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "distill": __version__,
        },
        train_s=round(trained.train_s, 2),
        teacher_cache_s=round(setup.teacher.seconds, 2),
        eval_s=round(sum(h.get("eval_runtime", 0.0) for h in history if "eval_accuracy" in h), 2),
        epochs=epochs,
        metrics=(kept := final_metrics(epochs, plan.args.load_best_model_at_end)),
        kept_epoch=kept.get("epoch"),
        stopped_early=0 < trainer.state.global_step < trainer.state.max_steps,
        oos_rule=oos_rule,
        rows=setup.rows.counts or None,
    )


def student_record(trained: Trained, setup: Setup) -> StudentRecord:
    plan, model = trained.plan, trained.trainer.model
    return StudentRecord(
        spec=plan.cfg.student,
        location=setup.models.student.location,
        layers_kept=trained.layers_kept,
        parameters=sum(p.numel() for p in model.parameters()),
        pooling="static" if plan.static else "mean" if isinstance(model, MeanPoolingClassifier) else "cls",
        head_init="model2vec" if plan.static else plan.cfg.head_init,
    )


def teacher_record(plan, setup: Setup) -> TeacherRecord | None:
    teacher, cfg, found = setup.models.teacher, plan.cfg, setup.teacher
    if teacher is None:
        return None
    if isinstance(teacher, LabelFile):  # what it covered, and the rows that kept their label alone
        return TeacherRecord(spec=teacher.spec, location=teacher.location, mode="labels",
                             labelled=found.labelled_by_file, labels_alone=found.labels_alone)  # fmt: skip
    ensemble = dict(members=cfg.teachers, ensemble=teacher.how) if isinstance(teacher, Ensemble) else {}
    return TeacherRecord(spec=teacher.spec, location=teacher.location, mode=cfg.teacher_mode,
                         cache_reused=found.cache_reused, **ensemble)  # fmt: skip


def final_metrics(epochs: list[dict], best_kept: bool) -> dict:
    """The metrics of the model that is saved: the last epoch's, or the best one's by the selection metric
    (``metrics.EXPECTED``) when the Trainer kept the best (the first of equals, as the Trainer does)."""
    if not epochs:
        return {}
    return max(epochs, key=lambda e: e.get(EXPECTED.key) or 0.0) if best_kept else epochs[-1]


def epoch_metrics(entry: dict) -> dict:
    """An evaluation log entry without the ``eval_`` prefixes and timing noise."""
    out = {"epoch": entry["epoch"]} if "epoch" in entry else {}
    out.update({k: entry[f"eval_{k}"] for k in ("loss", *QUALITY_KEYS, EXPECTED.key) if f"eval_{k}" in entry})
    return out
