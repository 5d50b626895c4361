"""What a student learns from: a ``Teacher`` is anything that gives logits over the run's labels for a list of
texts, with an identity for the cache. ``teacher_from`` makes the one the config names:

- ``ModelTeacher``: a trained classifier (a run folder, a local folder, a Hub id, or an exported ONNX folder),
  its logits computed once and cached (``teacher_cache.py``); the only kind that can also run on every step
  (``teacher_mode: online``), give its pooled features (the sentence-geometry loss) or its layers
  (hidden-state matching);
- ``Ensemble``: several of those (``--teacher a --teacher b``), each cached on its own, combined as the mean of
  their logits or of their probabilities (``teacher_ensemble``);
- ``LabelFile``: a file of labels made outside the tool (``--teacher-labels F``, ``data/soft_labels.py``); a row
  of NaN where it has no target, which the loss reads as "the label alone".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import torch

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.errors import UsageError


@dataclass
class Targets:
    """A teacher's answer for the training texts: logits (rows × labels; a row of NaN: no target for that
    text), whether they came from the cache, and for a file how many rows it covered."""

    logits: torch.Tensor
    cache_reused: bool | None = None
    covered: int | None = None


class Teacher(Protocol):
    """Texts in, logits over the run's labels out."""

    spec: str  # what the user named (``run.json``'s ``teacher.spec``)

    @property
    def labels(self) -> list[str] | None:
        """Its outputs' labels in order; None: it answers over whatever labels the run has (a file)."""

    @property
    def location(self) -> str:
        """Where it was read from (a resolved path or a Hub id), for ``run.json``."""

    def identity(self) -> str:
        """Identifies what it answers (weights, file contents): equal identities give equal logits."""

    def targets(self, cfg: Config, texts: Sequence[str], labels: list[str]) -> Targets:
        """Its logits for ``texts`` over ``labels`` (the run's, in output order)."""


@dataclass
class ModelTeacher:
    """A trained classifier the tool can load: a run, a folder, a Hub id or an exported ONNX folder."""

    spec: str
    ref: modeling.ModelRef
    config: object
    labels: list[str]

    @classmethod
    def load(cls, cfg: Config, spec: str) -> ModelTeacher:
        ref, model_config, labels = modeling.teacher_with_labels(cfg, spec)
        return cls(spec, ref, model_config, labels)

    @property
    def location(self) -> str:
        return self.ref.location

    def identity(self) -> str:
        return self.fingerprint

    @cached_property
    def fingerprint(self) -> str:
        """The cache's key for its weights (their files' digests, or the Hub commit), computed once for its
        logits and its features."""
        from distill_cli.training.teacher_cache import model_fingerprint

        return model_fingerprint(self.ref, self.config)

    def targets(self, cfg: Config, texts: Sequence[str], labels: list[str]) -> Targets:
        from distill_cli.training.teacher_cache import teacher_logits

        logits, reused = teacher_logits(cfg, self.ref, self.config, texts, fingerprint=self.fingerprint)
        return Targets(logits, cache_reused=reused)

    def features(self, cfg: Config, texts: Sequence[str]) -> torch.Tensor:
        """Its pooled features (what its head reads) for ``texts``, cached as its logits are."""
        from distill_cli.training.teacher_cache import teacher_logits

        return teacher_logits(cfg, self.ref, self.config, texts, "features", self.fingerprint)[0]

    def model(self, cfg: Config) -> torch.nn.Module:
        """The model itself, in eval mode, to run on every training step."""
        return modeling.load_for_inference(self.ref, cfg)


@dataclass
class Ensemble:
    """Several model teachers answering together: the mean of their logits, or (``probs``) of their
    probabilities, as log-probabilities. Their labels must be the first's, in the same order."""

    members: list[ModelTeacher]
    how: str  # logits or probs

    @property
    def spec(self) -> str:
        return self.members[0].spec

    @property
    def labels(self) -> list[str]:
        return self.members[0].labels

    @property
    def location(self) -> str:
        return self.members[0].location

    def identity(self) -> str:
        return hashlib.sha256(json.dumps([self.how, *[m.identity() for m in self.members]]).encode()).hexdigest()

    def targets(self, cfg: Config, texts: Sequence[str], labels: list[str]) -> Targets:
        answers = [m.targets(cfg, texts, labels) for m in self.members]  # each cached on its own
        reused = all(a.cache_reused for a in answers)
        return Targets(ensemble_logits([a.logits for a in answers], self.how), cache_reused=reused)


@dataclass
class LabelFile:
    """Labels made outside the tool (``data/soft_labels.py``), matched to the training texts."""

    spec: str
    text_column: str | None = None
    labels = None  # it answers over the run's labels

    @property
    def location(self) -> str:
        return str(Path(self.spec).resolve())

    def identity(self) -> str:
        from distill_cli.data.sources import sha_file

        return sha_file(Path(self.spec))

    def targets(self, cfg: Config, texts: Sequence[str], labels: list[str]) -> Targets:
        from distill_cli.data.soft_labels import read_soft_labels

        soft = read_soft_labels(self.spec, labels, self.text_column)
        logits, covered = soft.for_texts(list(texts))
        if covered == 0:
            raise UsageError(f"--teacher-labels {soft.path}: none of its texts is a training query")
        return Targets(torch.from_numpy(logits), covered=covered)


def teacher_from(cfg: Config) -> Teacher | None:
    """The teacher the config names (models loaded as configs only: nothing runs yet), or None."""
    if cfg.teacher_labels:
        return LabelFile(cfg.teacher_labels, cfg.text_column)
    if not cfg.teachers:
        return None
    lead = ModelTeacher.load(cfg, cfg.lead_teacher)
    if len(cfg.teachers) == 1:
        return lead
    members = [lead]
    for spec in cfg.teachers[1:]:
        member = ModelTeacher.load(cfg, spec)
        if member.labels != lead.labels:
            raise UsageError(f"teacher {spec}: its labels are not {lead.spec}'s in the same order; an ensemble "
                             "averages outputs label by label")  # fmt: skip
        members.append(member)
    return Ensemble(members, cfg.teacher_ensemble)


def lead_model(teacher: Teacher | None) -> ModelTeacher | None:
    """The model behind ``teacher``: itself, an ensemble's first (its tokenizer is checked against the
    student's); None for a file."""
    if isinstance(teacher, Ensemble):
        return teacher.members[0]
    return teacher if isinstance(teacher, ModelTeacher) else None


def ensemble_logits(members: list[torch.Tensor], how: str) -> torch.Tensor:
    """The teachers' mean: of their logits, or (``probs``) of their probabilities, as log-probabilities (the
    log of the mean computed from log-probabilities, so an underflowing probability is not log 0 = -inf, which
    the loss would take for a row with no teacher)."""
    if how == "logits":
        return torch.stack(members).mean(0)
    log_probs = torch.stack([m.float().log_softmax(-1) for m in members])
    return torch.logsumexp(log_probs, 0) - math.log(len(members))
