"""Static-embedding students: ``--student static:<encoder>``, with model2vec.

A static student is a table of token vectors, made from a transformer encoder by ``model2vec``'s
distillation (one forward pass per vocabulary token, then PCA), and a small head. A query costs one
tokenizer pass, a mean of vectors and a matrix product: a fraction of a millisecond, and no torch at
serving time. It learns with the same loss as every student, ``alpha * CE + (1 - alpha) * T^2 * KL``,
against the teacher's cached logits: model2vec's own classifier module (``StaticModelForClassification``)
trained by ``DistillationTrainer`` (``training/static_student.py``), with early stopping and the best
epoch kept, on validation.

The run folder is model2vec's ``StaticModelPipeline`` (safetensors and JSON, loadable without torch) plus
``run.json``. ``StaticClassifier`` runs such a folder the way every command calls a model. This module
imports nothing heavy at load time, and nothing of ours that loads models (``modeling`` imports it).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from distill_cli.config import Config
from distill_cli.extras import require
from distill_cli.weights import STATIC_HEAD as HEAD_FILE

PREFIX = "static:"
# Settings a static student trains well with, used where the config and flags leave them unset: its
# embeddings want a far larger learning rate than a transformer's, and its epochs cost about a second.
DEFAULTS = {"learning_rate": 1e-3, "epochs": 30, "batch_size": 256}
# A search's default learning-rate range is a transformer's (1e-5 to 1e-4): a static student's is wider and
# higher. Used where the config's ``search:`` section does not give the range.
SEARCH_DEFAULTS = {"learning_rate": (1e-4, 1e-2)}
# A static student distilled learns from two augmented variants of every labelled query too, labelled by
# the teacher, unless told otherwise: on CLINC150 that won on validation over the same recipe without them
# (BENCHMARKS.md, "Static students"; by less than a second seed moves it, so a weak preference).
DISTILL_AUGMENT = 2
# ... and from a spliced query made of each labelled one (its start, another query's end; the teacher labels
# it too): that won on validation over augmentation alone (BENCHMARKS.md, "Spliced queries").
DISTILL_SPLICE = 1


def encoder_spec(student: str) -> str | None:
    """``minilm-l6`` for ``static:minilm-l6``; None for a transformer student."""
    return student[len(PREFIX) :] if student.startswith(PREFIX) else None


def is_static_folder(path: Path) -> bool:
    """A model2vec pipeline: its head, and a config that describes it."""
    if not (path / HEAD_FILE).is_file() or not (path / "config.json").is_file():
        return False
    return "head_config" in json.loads((path / "config.json").read_text())


def with_defaults(cfg: Config) -> Config:
    """``cfg`` as it is for a transformer student. For a static one, model2vec must be installed, and the
    ``DEFAULTS`` fill what neither the config nor a flag set."""
    if encoder_spec(cfg.student) is None:
        return cfg
    require("model2vec")
    return cfg.model_copy(update={k: v for k, v in DEFAULTS.items() if k not in cfg.model_fields_set})


class StaticTokenizer:
    """Stands where a tokenizer goes for a static model: the pipeline tokenizes by itself."""

    def __call__(self, texts, **_kwargs) -> dict:
        return {"texts": [texts] if isinstance(texts, str) else list(texts)}


class StaticClassifier:
    """A saved static pipeline (``StaticModelPipeline``, numpy only), called like a transformers model
    with what ``StaticTokenizer`` gives: ``model(texts=[...]).logits``."""

    def __init__(self, folder: Path):
        require("model2vec")
        from model2vec.inference import StaticModelPipeline

        self.pipeline = StaticModelPipeline.from_pretrained(str(folder))
        labels = [str(c) for c in self.pipeline.classes_]
        self.config = SimpleNamespace(id2label=dict(enumerate(labels)), num_labels=len(labels))

    def __call__(self, texts: list[str], features: bool = False):
        """The logits; with ``features``, the mean vector the head reads too (as ``hidden_states[-1]``)."""
        import torch
        from transformers.modeling_outputs import SequenceClassifierOutput

        pooled = self.pipeline.model.encode(texts)
        logits = torch.from_numpy(self.pipeline.head._logits(pooled))
        return SequenceClassifierOutput(logits=logits, hidden_states=(torch.from_numpy(pooled),) if features else None)

    def eval(self) -> StaticClassifier:
        return self

    def num_parameters(self) -> int:
        head = sum(layer.weight.size + layer.bias.size for layer in self.pipeline.head.layers)
        return int(self.pipeline.model.embedding.size + head)
