"""``distill prepare``: read a dataset, name its labels, split and tokenize it for the student, save it."""

from __future__ import annotations

from pathlib import Path

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.prepared import Prepared, prepare
from distill_cli.errors import UsageError


def prepare_command(cfg: Config, output: Path | None, overwrite: bool) -> Prepared:
    """Tokenize for the student; with a teacher, take the teacher's label ids."""
    if output is not None and output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; prepare writes a folder: name a folder (new or prepared)")
    student = modeling.resolve_model(cfg.student, cfg)
    tokenizer = modeling.load_tokenizer(student, cfg)
    labels = modeling.teacher_with_labels(cfg)[2] if cfg.teacher else None
    return prepare(cfg, tokenizer, student.location, labels, cfg.lead_teacher, output, overwrite)


def summary(result: Prepared) -> dict:
    """The ``--json`` object of ``prepare``."""
    m = result.manifest
    return {
        "output": str(result.path),
        "splits": {s: m.splits.get(s, 0) for s in ("train", "validation", "test")},
        "num_labels": len(m.labels),
        "labels": m.labels,
        "reused": result.reused,
        "oos_setting": m.setting,
        "validation": m.validation,
        "per_intent": m.per_intent,
        "checks": [c.model_dump() for c in m.checks],
        "dropped": m.dropped,
    }
