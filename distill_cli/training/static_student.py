"""A static student in the Trainer: model2vec's classifier module behind the interface the Trainer and
``DistillationTrainer``'s loss expect (keyword tensors in, ``.logits`` out), and its collator."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.sources import sha
from distill_cli.files import atomic_folder, cache_lock
from distill_cli.training.teacher_cache import model_fingerprint
from distill_cli.training.trainer import DistillCollator
from distill_cli.ui import info


def static_model(encoder: modeling.ModelRef, cfg: Config):
    """The static model of ``encoder``, made once and kept in the cache, keyed by the encoder's weights, the
    dimensions and model2vec's version."""
    import model2vec
    from model2vec import StaticModel

    encoder_config = modeling.load_model_config(encoder, cfg)
    key = sha(json.dumps([model_fingerprint(encoder, encoder_config), cfg.static_dims, model2vec.__version__]))
    folder = cfg.cache_root() / "static" / key[:24]
    with cache_lock(cfg.cache_root(), f"static-{key[:24]}"):
        if (folder / "model.safetensors").is_file():
            return StaticModel.from_pretrained(str(folder))
        static = distill_static(encoder, cfg)
        with atomic_folder(folder) as tmp:
            static.save_pretrained(str(tmp))
    return static


def distill_static(encoder: modeling.ModelRef, cfg: Config):
    """model2vec's distillation of the encoder's body, loaded by us (safetensors, no remote code unless the
    config allows it): a vector for every token of its vocabulary, mean-pooled, PCA to ``static_dims``."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel

    body = modeling.load_weights(AutoModel, encoder, cfg)
    tokenizer = modeling.load_tokenizer(encoder, cfg)
    info(f"making the static model of {encoder.spec} ({len(tokenizer)} tokens, {cfg.static_dims} dimensions)")
    return distill_from_model(body, tokenizer, pca_dims=cfg.static_dims)


class StaticStudent(torch.nn.Module):
    """``StaticModelForClassification`` (model2vec's module, not a copy of it), called with the flat token ids,
    offsets and lengths of a batch."""

    def __init__(self, module, labels: list[str]):
        super().__init__()
        self.module = module
        module.classes_, module.multilabel = list(labels), False

    def forward(self, ids, offsets, lengths) -> SequenceClassifierOutput:
        from model2vec.train.dataset import TokenBatch

        return SequenceClassifierOutput(logits=self.module(TokenBatch(ids, offsets, lengths)))

    def sentence_head(self) -> tuple[torch.nn.Module, int]:
        """The head and the width of what it reads, the (normalised) mean of the token vectors: the sentence
        vector the geometry loss points where the teacher's points."""
        return self.module.head, self.module.embed_dim

    def save(self, folder: Path) -> None:
        """The model2vec pipeline: static vectors (float16, as model2vec's distillation stores them: half the
        size), tokenizer, head and labels, as safetensors and JSON."""
        from model2vec.model import quantize_model

        pipeline = self.module.to_pipeline()
        pipeline.model = quantize_model(pipeline.model, quantize_to="float16")
        pipeline.save_pretrained(str(folder))


def build_student(static, cfg: Config, labels: list[str]) -> StaticStudent:
    """model2vec's classifier (its default head, a random start) over ``labels``, on ``static`` (a
    ``static_model``)."""
    from model2vec.train import StaticModelForClassification

    module = StaticModelForClassification.from_static_model(
        model=static, out_dim=len(labels), max_length=cfg.max_length
    )
    return StaticStudent(module, labels)


class StaticCollator(DistillCollator):
    """Tokenizes the batch's texts with the static model's own tokenizer (its vocabulary may differ from
    the encoder's), then adds the labels and the cached teacher logits as ``DistillCollator`` does."""

    def __init__(self, student: StaticStudent, teacher_logits=None, teacher_features=None):
        self.student, self.teacher_logits, self.teacher_features = student, teacher_logits, teacher_features

    def encode(self, features: list[dict]) -> dict:
        batch = self.student.module.tokenize([f["text"] for f in features])
        return {
            "ids": batch.ids,
            "offsets": batch.offsets,
            "lengths": batch.lengths,
            "labels": torch.tensor([f["label"] for f in features]),
        }
