"""The textbook recipe, as a reference: chapter 8's ``DistillationTrainer`` of *NLP with Transformers*.

A plain ``Trainer`` subclass whose ``compute_loss`` runs the teacher forward on every step (no cache),
on shuffled batches (no length grouping). Trained on the same prepared data, from the same student
initialisation, with the same hyperparameters as ``distill distill``, so that wall time and accuracy can
be compared side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.prepared import load_for_training
from distill_cli.metrics import metrics_fn
from distill_cli.training.trainer import recipe_arguments


@dataclass
class TextbookTrainingArguments(TrainingArguments):
    alpha: float = field(default=0.5)
    temperature: float = field(default=2.0)


class TextbookDistillationTrainer(Trainer):
    """The book's trainer, nearly verbatim (labels go through the model to get its CE loss)."""

    def __init__(self, *args, teacher_model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher_model = teacher_model

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs_stu = model(**inputs)
        loss_ce = outputs_stu.loss
        logits_stu = outputs_stu.logits
        with torch.no_grad():
            outputs_tea = self.teacher_model(**inputs)
            logits_tea = outputs_tea.logits
        loss_fct = nn.KLDivLoss(reduction="batchmean")
        t = self.args.temperature
        loss_kd = t**2 * loss_fct(F.log_softmax(logits_stu / t, dim=-1), F.softmax(logits_tea / t, dim=-1))
        loss = self.args.alpha * loss_ce + (1.0 - self.args.alpha) * loss_kd
        return (loss, outputs_stu) if return_outputs else loss


def train_textbook(cfg: Config, output: Path) -> dict:
    """Distill ``cfg.teacher`` into ``cfg.student`` (cut to ``cfg.student_layers``) the textbook way."""
    teacher_ref, _, labels = modeling.teacher_with_labels(cfg)
    student_ref = modeling.resolve_model(cfg.student, cfg)
    tokenizer = modeling.load_tokenizer(student_ref, cfg)
    prepared = load_for_training(cfg, tokenizer, student_ref.location, labels, cfg.teacher)
    dsd = prepared.datasets.select_columns(
        [
            c
            for c in ("input_ids", "attention_mask", "token_type_ids", "label")
            if c in prepared.datasets["train"].column_names
        ]
    )
    set_seed(cfg.seed)
    student = modeling.load_classifier(student_ref, cfg, labels)
    if cfg.student_layers:
        modeling.keep_layers(student, cfg.student_layers)
    teacher = modeling.load_for_inference(teacher_ref, cfg)
    args = TextbookTrainingArguments(
        output_dir=str(output),
        **recipe_arguments(cfg),  # the same recipe as `distill distill`
        save_strategy="no",
        use_cpu=True,
        alpha=cfg.alpha,
        logging_strategy="epoch",
    )
    trainer = TextbookDistillationTrainer(
        model=student,
        args=args,
        train_dataset=dsd["train"],
        eval_dataset=dsd["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_fn(labels, prepared.manifest.get("oos_label")),
        teacher_model=teacher,
    )
    trainer.remove_callback(PrinterCallback)  # its raw dicts would go to stdout
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    trainer.save_model(str(output))
    (output / "training_args.bin").unlink(missing_ok=True)
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    return {"output": str(output), "train_s": round(train_s, 2), "validation_accuracy": evals[-1]["eval_accuracy"]}
