"""A static student in the Trainer: model2vec's classifier module behind the interface the Trainer and
``DistillationTrainer``'s loss expect (keyword tensors in, ``.logits`` out), and its collator."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distill_cli.config import Config
from distill_cli.static import static_model
from distill_cli.training.trainer import DistillCollator


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

    def save(self, folder: Path) -> None:
        """The model2vec pipeline: static vectors (float16, as model2vec's distillation stores them: half the
        size), tokenizer, head and labels, as safetensors and JSON."""
        from model2vec.model import quantize_model

        pipeline = self.module.to_pipeline()
        pipeline.model = quantize_model(pipeline.model, quantize_to="float16")
        pipeline.save_pretrained(str(folder))


def build_student(encoder, cfg: Config, labels: list[str]) -> StaticStudent:
    """model2vec's classifier (its default head) over ``labels``, on the static model of ``encoder``."""
    from model2vec.train import StaticModelForClassification

    module = StaticModelForClassification.from_static_model(
        model=static_model(encoder, cfg), out_dim=len(labels), max_length=cfg.max_length
    )
    return StaticStudent(module, labels)


class StaticCollator(DistillCollator):
    """Tokenizes the batch's texts with the static model's own tokenizer (its vocabulary may differ from
    the encoder's), then adds the labels and the cached teacher logits as ``DistillCollator`` does."""

    def __init__(self, student: StaticStudent, teacher_logits: torch.Tensor | None = None):
        self.student, self.teacher_logits = student, teacher_logits

    def encode(self, features: list[dict]) -> dict:
        batch = self.student.module.tokenize([f["text"] for f in features])
        return {
            "ids": batch.ids,
            "offsets": batch.offsets,
            "lengths": batch.lengths,
            "labels": torch.tensor([f["label"] for f in features]),
        }
