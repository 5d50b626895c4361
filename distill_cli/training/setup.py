"""The records the recipe's steps hand each other (``recipe.py``): the models, the teacher's part, everything a
run needs before its student is built (``Setup``, which a search shares with every trial), the out-of-scope
rule to choose, and a trained student."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from distill_cli import modeling
from distill_cli.data.prepared import Prepared
from distill_cli.data.transfer import ExtraRows
from distill_cli.training.plan import Plan
from distill_cli.training.teachers import ModelTeacher, Teacher, lead_model
from distill_cli.training.trainer import DistillationTrainer


@dataclass(frozen=True)
class OOSChoice:
    """Which out-of-scope rule a run chooses on validation after training: ``expected_accuracy`` (the data
    has out-of-scope queries) or ``fallback`` (it has none: ``oos_reject`` of in-scope queries turned away)."""

    kind: str
    oos_label: str


@dataclass
class Models:
    """The student to train and, for ``distill``, the teacher it learns from (``training/teachers.py``)."""

    student: modeling.ModelRef
    student_config: object
    tokenizer: object
    teacher: Teacher | None = None

    @property
    def teacher_model(self) -> ModelTeacher | None:
        """The model behind the teacher (an ensemble's first), or None (no teacher, or a file of labels)."""
        return lead_model(self.teacher)

    @property
    def teacher_labels(self) -> list[str] | None:
        """The labels the teacher's outputs stand for, which the student takes over (None: the data's)."""
        return None if self.teacher is None else self.teacher.labels


@dataclass
class TeacherSetup:
    """How the teacher reaches the loss: cached logits, or a model run on every step."""

    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None  # its pooled features, for the sentence-geometry loss
    model: torch.nn.Module | None = None
    seconds: float = 0.0
    cache_reused: bool | None = None
    hidden_model: torch.nn.Module | None = None  # hidden-state matching: the teacher run on every step
    labelled_by_file: int | None = None  # a file of labels (teacher_labels): the training rows it covered,
    labels_alone: int | None = None  # and those it did not, which keep their label alone


@dataclass
class Setup:
    """Everything a run needs before its student is built. ``distill search`` builds it once and shares it
    with every trial: the teacher's logits, the data and the probe's frozen features are paid for once."""

    models: Models
    prepared: Prepared
    teacher: TeacherSetup
    oos: OOSChoice | None  # the out-of-scope rule to choose after training, if any
    rows: ExtraRows = field(default_factory=ExtraRows)  # added rows of the train split (names counted)
    probe_features: dict[int | None, torch.Tensor] = field(default_factory=dict)  # by student_layers


@dataclass
class Trained:
    """A student after training, with what finishing its run needs."""

    plan: Plan
    trainer: DistillationTrainer
    layers_kept: list[int] | None
    train_s: float
