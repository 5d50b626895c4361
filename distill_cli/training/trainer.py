"""The one trainer behind ``finetune`` and ``distill``.

``DistillationTrainer`` is a ``transformers.Trainer`` that overrides only what it must: the loss (see
``loss.py``), the length-grouped sampler (so that a resumed run replays the same batches) and the
checkpoint I/O (no pickles). ``finetune`` is the same trainer with ``alpha = 1`` and no teacher. The
teacher's logits reach the loss either cached, gathered by the collator from a tensor computed once
(``teacher_cache.py``), or online, from a teacher forward pass on every step as the textbook does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from distill_cli.config import Config
from distill_cli.errors import DistillError
from distill_cli.inference import final_linear
from distill_cli.training import checkpoint
from distill_cli.training.hidden import LayerTap, hidden_loss
from distill_cli.training.loss import contrastive_loss, distillation_loss, geometry_loss
from distill_cli.training.optim import layer_groups

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TEACHER_LOGITS = "teacher_logits"
TEACHER_FEATURES = "teacher_features"
ROW = "row"
PROJECTION = "distill_projection"  # the student's training-only map into the teacher's feature space


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the two knobs of knowledge distillation."""

    alpha: float = field(default=0.5, metadata={"help": "Weight of the cross-entropy on the labels (1 = no teacher)."})
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature for both models' logits."})
    feature_weight: float = field(
        default=0.0, metadata={"help": "Weight of 1 - cos(projected student pooled vector, teacher's)."}
    )
    transfer_weight: float = field(
        default=1.0, metadata={"help": "Weight of the KD term of unlabelled (transfer-set, augmented) rows."}
    )
    contrastive_weight: float = field(
        default=0.0, metadata={"help": "Weight of the supervised contrastive loss on the pooled vectors."}
    )
    kd_loss: str = field(default="kl", metadata={"help": "The distillation term, by name (kd_losses.KD_LOSSES)."})
    hidden_weight: float = field(
        default=0.0, metadata={"help": "Weight of the MSE between mapped student and teacher layers' token vectors."}
    )
    layer_decay: float = field(
        default=1.0, metadata={"help": "Each encoder layer learns at this times the rate of the one above (1: off)."}
    )


class DistillationTrainer(Trainer):
    """A ``Trainer`` that distills a teacher into the model it trains.

    Args:
        teacher_model: run on every training step when the batches carry no cached ``teacher_logits``.
            Leave it ``None`` when the dataset has a ``teacher_logits`` column, or when ``alpha = 1``.
        *args, **kwargs: as for ``Trainer``; ``args`` must be ``DistillationTrainingArguments``.

    With ``contrastive_weight > 0``, training adds that weight times the supervised contrastive loss of the
    pooled features of the batch's labelled rows (``loss.contrastive_loss``), and batches are drawn in pairs
    of queries of one label (``LabelPairSampler``), so that every labelled row meets another of its label.

    With ``feature_weight > 0`` and batches carrying the teacher's pooled features (``teacher_features``),
    training adds ``feature_weight * (1 - cos)`` between the student's pooled features, caught on their way
    into its head and mapped by its ``distill_projection`` submodule (``add_projection``), and the teacher's.

    The loss is a mean over the batch, not normalised by ``num_items_in_batch``, so it says so with
    ``loss_is_scaled_for_ga = False``: ``Trainer`` then divides it by the gradient accumulation steps.
    Without this, BERT-like models (whose forward takes ``**kwargs``) get losses and gradients
    ``gradient_accumulation_steps`` times too large. Evaluation reports the plain cross-entropy.
    Checkpoints hold no pickles: optimizer, scheduler and RNG states are safetensors and JSON.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, teacher_model: torch.nn.Module | None = None, hidden_teacher=None, layer_map=None,
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model
        if self.teacher is not None:
            self.teacher.to(self.args.device).eval()
        self.hidden_teacher, self.layer_map = hidden_teacher, layer_map  # hidden-state matching (training/hidden.py)
        if self.args.hidden_weight > 0:
            self.hidden_teacher.to(self.args.device).eval()
            self.taps = (LayerTap(self.model), LayerTap(self.hidden_teacher))
        self.pooled: torch.Tensor | None = None  # the student's pooled features of this step (geometry loss)
        if self.args.feature_weight > 0 or self.args.contrastive_weight > 0:
            pooled_input(self.model)[0].register_forward_pre_hook(self._catch_pooled)

    def create_optimizer(self, model=None):
        """The ``Trainer``'s optimizer; with ``layer_decay`` < 1, its parameter groups by depth
        (``training/optim.py``)."""
        if self.optimizer is not None or self.args.layer_decay >= 1.0:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decayed = set(self.get_decay_parameter_names(model))
        groups = layer_groups(model, self.args.learning_rate, self.args.layer_decay, self.args.weight_decay, decayed)
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **kwargs)
        return self.optimizer

    def _catch_pooled(self, _module, args) -> None:
        self.pooled = args[0]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        teacher_features = inputs.pop(TEACHER_FEATURES, None)
        matching = model.training and self.args.hidden_weight > 0
        student_states, outputs = self.taps[0].catch(lambda: model(**inputs)) if matching else ([], model(**inputs))
        teacher_states = None
        if model.training and self.args.alpha < 1.0:
            if teacher_logits is None:
                teacher_logits, teacher_states = self._online_teacher(inputs, matching)
            args = self.args
            loss = distillation_loss(
                outputs.logits, labels, teacher_logits, args.alpha, args.temperature, args.transfer_weight, args.kd_loss
            )
        else:
            loss = evaluation_loss(outputs.logits, labels)
        if model.training and self.args.feature_weight > 0 and teacher_features is not None:
            projection = getattr(self.accelerator.unwrap_model(model), PROJECTION)
            loss = loss + self.args.feature_weight * geometry_loss(projection(self.pooled), teacher_features)
        if model.training and self.args.contrastive_weight > 0:
            loss = loss + self.args.contrastive_weight * contrastive_loss(self.pooled, labels)
        if matching:
            if teacher_states is None:  # cached logits: the teacher runs here for its layers alone
                with torch.no_grad():
                    teacher_states, _ = self.taps[1].catch(lambda: self.hidden_teacher(**inputs))
            mask = inputs["attention_mask"]
            loss = loss + self.args.hidden_weight * hidden_loss(student_states, teacher_states, self.layer_map, mask)
        if not torch.isfinite(loss):
            # Stop at the first bad step: the run stays unfinished in .partial, no finished-looking model.
            raise DistillError(
                f"training diverged: the loss is {loss.item()} at step {self.state.global_step}; "
                "lower the learning rate, or check the data and the teacher"
            )
        return (loss, outputs) if return_outputs else loss

    def _online_teacher(self, inputs: dict, matching: bool):
        """The online teacher's logits of the batch, and its layers' outputs where hidden-state matching reads
        the same model (one pass gives both), else None."""
        if self.teacher is None:
            raise ValueError("alpha < 1 needs a teacher model or cached teacher logits")
        with torch.no_grad():
            if matching and self.teacher is self.hidden_teacher:
                states, out = self.taps[1].catch(lambda: self.teacher(**inputs))
                return out.logits, states
            return self.teacher(**inputs).logits, None

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if self.args.contrastive_weight > 0:
            return LabelPairSampler(list(dataset["label"]), seed)
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        return EpochLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=list(dataset[self.args.length_column_name]),
            seed=seed,
        )

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """As ``Trainer._save``, without the ``training_args.bin`` pickle it writes last: the run's settings are
        in ``run.json``, and its checkpoints hold no pickle."""
        super()._save(output_dir, state_dict)
        Path(output_dir or self.args.output_dir, "training_args.bin").unlink(missing_ok=True)

    # Pickle-free checkpoints (see training/checkpoint.py).
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.args.should_save:
            checkpoint.save_optimizer(self.optimizer, Path(output_dir) / checkpoint.OPTIMIZER)
            checkpoint.save_scheduler(self.lr_scheduler, Path(output_dir) / checkpoint.SCHEDULER)

    # Resuming loads every state or fails (``runs.usable_checkpoint`` checked them): never a silent skip.
    def _load_optimizer_and_scheduler(self, ckpt: str | None) -> None:
        if ckpt is not None:
            checkpoint.load_optimizer(self.optimizer, Path(ckpt) / checkpoint.OPTIMIZER)
            checkpoint.load_scheduler(self.lr_scheduler, Path(ckpt) / checkpoint.SCHEDULER)

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)
        checkpoint.save_rng(checkpoint.rng_file(Path(output_dir), self.args.process_index, self.args.world_size))

    def _load_rng_state(self, ckpt: str | None) -> None:
        if ckpt is not None:
            checkpoint.load_rng(checkpoint.rng_file(Path(ckpt), self.args.process_index, self.args.world_size))


def evaluation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of the rows whose label the model has an output for: open-set validation holds
    out-of-scope queries (labelled past the last output), which the rule answers, not the loss; 0 for a
    batch of them alone."""
    known = labels < logits.shape[-1]
    if known.all():
        return F.cross_entropy(logits, labels)
    if not known.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], labels[known])


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """Batches of similar length (far less padding), in an order that depends only on the seed and the
    epoch: a run resumed mid-epoch replays exactly the batches the interrupted run would have seen.
    (``LengthGroupedSampler`` draws from the global RNG when an epoch starts, which a resume cannot replay.)"""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class LabelPairSampler(torch.utils.data.Sampler):
    """Every row once an epoch, in pairs of rows of one label (the rows of a label shuffled and cut in
    twos; a label's odd row, and each unlabelled row, alone), the pairs in random order: a batch of 2k rows
    then holds about k labels twice, the positives a contrastive loss needs, even with a few examples of
    each of many labels. The order depends only on the seed and the epoch, so a resumed run replays it."""

    def __init__(self, labels: list[int], seed: int):
        self.labels, self.seed, self.epoch = labels, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        by_label: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label if label >= 0 else -1 - i, []).append(i)
        groups = []
        for rows in by_label.values():
            order = [rows[j] for j in torch.randperm(len(rows), generator=generator).tolist()]
            groups += [order[j : j + 2] for j in range(0, len(order), 2)]
        return iter([i for g in torch.randperm(len(groups), generator=generator).tolist() for i in groups[g]])


class DistillCollator:
    """Pads the model inputs of a batch, dropping other columns. With ``teacher_logits`` (one row per
    training example), it also gathers the batch's cached logits by the examples' ``row`` index: a tensor
    lookup, not 151 floats per example converted out of Arrow."""

    def __init__(self, tokenizer, teacher_logits: torch.Tensor | None = None, teacher_features=None):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.teacher_logits, self.teacher_features = teacher_logits, teacher_features

    def encode(self, features: list[dict]) -> dict:
        return self.pad([{k: f[k] for k in (*MODEL_INPUTS, "label") if k in f} for f in features])

    def __call__(self, features: list[dict]) -> dict:
        batch = self.encode(features)
        if ROW in features[0]:
            rows = torch.tensor([f[ROW] for f in features])
            for key, cached in ((TEACHER_LOGITS, self.teacher_logits), (TEACHER_FEATURES, self.teacher_features)):
                if cached is not None:
                    batch[key] = cached[rows]
        return batch


def pooled_input(model) -> tuple[torch.nn.Module, int]:
    """The layer that reads the model's pooled sentence vector, and that vector's width: a static student's
    head (fed the mean of its token vectors), else the classifier's linear head."""
    if hasattr(model, "sentence_head"):
        return model.sentence_head()
    head = final_linear(model)
    return head, head.in_features


def add_projection(model, teacher_width: int) -> None:
    """A linear map from the student's pooled features to the teacher's, trained with the student (it is a
    submodule, so the optimizer and the checkpoints have it) and removed before the model is saved."""
    width = pooled_input(model)[1]
    model.add_module(PROJECTION, torch.nn.Linear(width, teacher_width))


def remove_projection(model) -> None:
    if hasattr(model, PROJECTION):
        delattr(model, PROJECTION)


def add_row_and_length(ds):
    """``row`` (to find an example's cached teacher logits) and ``length`` (to group batches by length)."""
    return ds.map(
        lambda b, idx: {ROW: idx, "length": [len(x) for x in b["input_ids"]]}, batched=True, with_indices=True
    )


def recipe_arguments(cfg: Config) -> dict:
    """The ``TrainingArguments`` a config sets: the recipe shared by every trainer that follows it."""
    return dict(
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,  # -1: the epochs decide
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        seed=cfg.seed,
        eval_strategy="epoch",
        report_to=cfg.report_to,
        disable_tqdm=True,
        temperature=cfg.temperature,
    )
