"""The one trainer behind ``finetune`` and ``distill``.

``DistillationTrainer`` is a ``transformers.Trainer`` whose loss mixes the cross-entropy on the labels
with the KL divergence to a teacher's softened predictions (Hinton et al. 2015; chapter 8 of *NLP with
Transformers*)::

    loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

``finetune`` is the same trainer with ``alpha = 1`` and no teacher. By default the teacher's logits are
computed once over the training split and cached on disk (``teacher_mode: cached``), so an epoch of
``distill`` costs what an epoch of ``finetune`` costs; ``teacher_mode: online`` runs the teacher on every
step as the textbook does.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from distill_cli import __version__, checkpoint, data, modeling
from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.files import atomic_file, move_into_place
from distill_cli.metrics import classification_metrics
from distill_cli.ui import Bar, warn

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TEACHER_LOGITS = "teacher_logits"
ROW = "row"


# ------------------------------------------------------------------------------------------ the trainer


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the two knobs of knowledge distillation."""

    alpha: float = field(default=0.5, metadata={"help": "Weight of the cross-entropy on the labels (1 = no teacher)."})
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature for both models' logits."})


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """``alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)``, KL averaged over the batch.

    The ``T^2`` factor keeps the soft-target gradients on the same scale whatever the temperature.
    """
    ce = F.cross_entropy(student_logits, labels)
    if alpha >= 1.0:
        return ce
    if teacher_logits is None:
        raise ValueError("alpha < 1 needs the teacher's logits")
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.softmax(teacher_logits.to(student_logits.dtype) / t, dim=-1),
        reduction="batchmean",
    )
    return alpha * ce + (1.0 - alpha) * t * t * kl


class DistillationTrainer(Trainer):
    """A ``Trainer`` that distills a teacher into the model it trains.

    Args:
        teacher_model: run on every training step when the batches carry no cached ``teacher_logits``.
            Leave it ``None`` when the dataset has a ``teacher_logits`` column, or when ``alpha = 1``.
        *args, **kwargs: as for ``Trainer``; ``args`` must be ``DistillationTrainingArguments``.

    The loss is a mean over the batch, not normalised by ``num_items_in_batch``, so it says so with
    ``loss_is_scaled_for_ga = False``: ``Trainer`` then divides it by the gradient accumulation steps.
    Without this, BERT-like models (whose forward takes ``**kwargs``) get losses and gradients
    ``gradient_accumulation_steps`` times too large. Evaluation reports the plain cross-entropy.
    Checkpoints hold no pickles: optimizer, scheduler and RNG states are safetensors and JSON.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, teacher_model: torch.nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model
        if self.teacher is not None:
            self.teacher.to(self.args.device).eval()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        outputs = model(**inputs)
        if model.training and self.args.alpha < 1.0:
            if teacher_logits is None:
                if self.teacher is None:
                    raise ValueError("alpha < 1 needs a teacher model or cached teacher logits")
                with torch.no_grad():
                    teacher_logits = self.teacher(**inputs).logits
            loss = distillation_loss(outputs.logits, labels, teacher_logits, self.args.alpha, self.args.temperature)
        else:
            loss = F.cross_entropy(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=list(dataset[self.args.length_column_name]),
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )

    # Pickle-free checkpoints (see distill_cli/checkpoint.py).
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.args.should_save:
            checkpoint.save_optimizer(self.optimizer, Path(output_dir) / checkpoint.OPTIMIZER)
            checkpoint.save_scheduler(self.lr_scheduler, Path(output_dir) / checkpoint.SCHEDULER)

    def _load_optimizer_and_scheduler(self, ckpt: str | None) -> None:
        if ckpt is not None and (Path(ckpt) / checkpoint.OPTIMIZER).is_file():
            checkpoint.load_optimizer(self.optimizer, Path(ckpt) / checkpoint.OPTIMIZER)
            checkpoint.load_scheduler(self.lr_scheduler, Path(ckpt) / checkpoint.SCHEDULER)

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)
        checkpoint.save_rng(checkpoint.rng_file(Path(output_dir), self.args.process_index, self.args.world_size))

    def _load_rng_state(self, ckpt: str | None) -> None:
        if ckpt is not None:
            path = checkpoint.rng_file(Path(ckpt), self.args.process_index, self.args.world_size)
            if path.is_file():
                checkpoint.load_rng(path)


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


class DistillCollator:
    """Pads the model inputs of a batch, dropping other columns. With ``teacher_logits`` (one row per
    training example), it also gathers the batch's cached logits by the examples' ``row`` index: a tensor
    lookup, not 151 floats per example converted out of Arrow."""

    def __init__(self, tokenizer, teacher_logits: torch.Tensor | None = None):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.teacher_logits = teacher_logits

    def __call__(self, features: list[dict]) -> dict:
        batch = self.pad([{k: f[k] for k in (*MODEL_INPUTS, "label") if k in f} for f in features])
        if self.teacher_logits is not None and ROW in features[0]:
            batch[TEACHER_LOGITS] = self.teacher_logits[torch.tensor([f[ROW] for f in features])]
        return batch


def add_row_and_length(ds):
    """``row`` (to find an example's cached teacher logits) and ``length`` (to group batches by length)."""
    return ds.map(
        lambda b, idx: {ROW: idx, "length": [len(x) for x in b["input_ids"]]}, batched=True, with_indices=True
    )


# ----------------------------------------------------------------------------------- the teacher cache


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(ref: modeling.ModelRef, model_config) -> str:
    """Identifies a teacher's weights: file contents for a local model, the commit for a Hub model."""
    if ref.is_local:
        root = Path(ref.location)
        files = sorted(root.glob("*.safetensors")) + sorted(root.glob("pytorch_model*.bin"))
        files += [root / n for n in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")]
        return hashlib.sha256("".join(f.name + _file_digest(f) for f in files if f.is_file()).encode()).hexdigest()
    return f"{ref.location}@{getattr(model_config, '_commit_hash', None)}"


@torch.inference_mode()
def compute_logits(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64, description: str = "teacher logits"
) -> torch.Tensor:
    """Logits of ``model`` for ``texts`` in their order, batched by length (little padding)."""
    model.eval()
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
    out = torch.empty(len(texts), model.config.num_labels)
    keys = [k for k in MODEL_INPUTS if k in enc]
    device = next(model.parameters()).device
    with Bar(description, len(texts)) as bar:
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            out[torch.as_tensor(idx)] = model(**batch.to(device)).logits.float().cpu()
            bar.advance(len(idx))
    return out


def teacher_logits(cfg: Config, ref: modeling.ModelRef, model_config, texts: list[str]) -> tuple[torch.Tensor, bool]:
    """The teacher's logits over ``texts``, from the cache when the same teacher saw the same texts."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(
        json.dumps(
            [
                model_fingerprint(ref, model_config),
                cfg.max_length,
                hashlib.sha256("\n".join(texts).encode()).hexdigest(),
            ]
        ).encode()
    ).hexdigest()[:24]
    path = cfg.cache_root() / "teacher-logits" / f"{key}.safetensors"
    if path.is_file():
        return load_file(str(path))["logits"], True
    tokenizer = modeling.load_tokenizer(ref, cfg)
    model = modeling.load_for_inference(ref, cfg)
    logits = compute_logits(model, tokenizer, texts, cfg.max_length)
    with atomic_file(path) as tmp:
        save_file({"logits": logits.contiguous()}, str(tmp), metadata={"teacher": ref.spec, "rows": str(len(texts))})
    return logits, False


# ------------------------------------------------------------------------------------------ callbacks


class RichProgress(TrainerCallback):
    """One bar per run (epoch, step, loss, samples/s, ETA) and one line per evaluation, on rank 0."""

    def __init__(self, description: str):
        self.description, self.bar, self.loss = description, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = Bar(self.description, state.max_steps)
            self.start, self.start_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            elapsed = time.perf_counter() - self.start
            rate = (
                (state.global_step - self.start_step)
                * args.train_batch_size
                * args.gradient_accumulation_steps
                * args.world_size
                / max(elapsed, 1e-9)
            )
            loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
            self.bar.update(state.global_step, f"epoch {state.epoch:.2f}{loss} {rate:.0f} samples/s")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.bar is not None and metrics:
            self.bar.log(f"epoch {state.epoch:.0f}: " + format_metrics(metrics, prefix="eval_"))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


class StopOnSignal(TrainerCallback):
    """SIGINT/SIGTERM: finish the current step, save a checkpoint and stop; a second signal aborts."""

    def __init__(self):
        self.signum = None

    def install(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def on_step_end(self, args, state, control, **kwargs):
        if self.signum is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        # The checkpoint is already saved: no half-epoch evaluation in the history, and no second save
        # whose RNG state (advanced by the evaluation) would make the resumed run diverge.
        if self.signum is not None:
            control.should_evaluate = False
            control.should_save = False


def format_metrics(metrics: dict, prefix: str = "") -> str:
    names = {
        "accuracy": "accuracy",
        "in_scope_accuracy": "in-scope",
        "oos_recall": "oos recall",
        "macro_f1": "macro-F1",
    }
    parts = [f"{label} {metrics[prefix + k]:.4f}" for k, label in names.items() if metrics.get(prefix + k) is not None]
    return "validation " + ", ".join(parts)


# ------------------------------------------------------------------------------------------- the run


class Interrupted(DistillError):
    """Training stopped by a signal after saving a checkpoint; exit 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def _same_on_all_ranks(text: str) -> str:
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


def _slug(spec: str) -> str:
    return re.sub(r"[^\w.-]+", "-", Path(spec).name or spec).strip("-") or "model"


def run_paths(cfg: Config, command: str) -> tuple[Path, bool]:
    """The run folder, and whether its name was generated (and must be passed again to resume)."""
    if cfg.output is not None:
        return cfg.output, False
    if cfg.name:
        return cfg.runs_dir / cfg.name, False
    return cfg.runs_dir / f"{command}-{_slug(cfg.student)}-{time.strftime('%Y%m%d-%H%M%S')}", True


def open_run_folder(final: Path, partial: Path, resume: bool, overwrite: bool, is_main: bool) -> Path | None:
    """Check the run folder before any compute; returns the checkpoint to resume from, if asked.
    A finished run is never replaced without ``overwrite``, nor an interrupted one without ``resume``."""
    if final.exists() and not overwrite:
        raise UsageError(f"run folder {final} already exists; pass --overwrite to replace it, or another --name")
    if resume:
        resume_from = last_checkpoint(partial)
        if resume_from is None:
            raise UsageError(f"nothing to resume: no checkpoint under {partial}")
        return resume_from
    if partial.exists():
        if not overwrite:
            raise UsageError(
                f"{partial} holds an interrupted run; pass --resume to continue it or --overwrite to start over"
            )
        if is_main:
            shutil.rmtree(partial)
    return None


def last_checkpoint(partial: Path) -> Path | None:
    ckpts = sorted(partial.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return ckpts[-1] if ckpts else None


def check_command(cfg: Config, command: str) -> None:
    """What each command needs before any compute is spent."""
    if command == "finetune" and cfg.alpha < 1.0:
        raise UsageError(
            f"alpha={cfg.alpha} needs a teacher: finetune trains on the labels alone (alpha 1); "
            "use `distill distill --teacher NAME` to distill"
        )
    if command == "distill" and not cfg.teacher:
        raise UsageError("distill needs a teacher: pass --teacher NAME or set 'teacher' in the config")


def recipe_arguments(cfg: Config) -> dict:
    """The ``TrainingArguments`` a config sets: the recipe shared by every trainer that follows it."""
    return dict(
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        seed=cfg.seed,
        eval_strategy="epoch",
        report_to="none",
        disable_tqdm=True,
        temperature=cfg.temperature,
    )


def train(
    cfg: Config, command: str, resume: bool = False, overwrite: bool = False, argv: list[str] | None = None
) -> dict:
    """Run ``finetune`` or ``distill`` end to end and return the run summary (also in ``run.json``).

    ``argv`` is the command line as typed, to print the exact command that resumes an interrupted run.
    """
    check_command(cfg, command)
    use_teacher = command == "distill"
    student_ref = modeling.resolve_model(cfg.student, cfg)
    teacher_ref = None

    args = DistillationTrainingArguments(
        output_dir=str(cfg.runs_dir / ".pending"),
        **recipe_arguments(cfg),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        data_seed=cfg.seed,
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=10,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=False,
        alpha=cfg.alpha if use_teacher else 1.0,
    )
    is_main = args.process_index == 0
    final, generated = run_paths(cfg, command)
    final = Path(_same_on_all_ranks(str(final)))
    partial = final.with_name(final.name + ".partial")
    args.output_dir = str(partial)
    resume_from = open_run_folder(final, partial, resume, overwrite, is_main)

    # Labels come from the teacher when there is one; the student takes them over.
    teacher_labels = teacher_config = None
    if use_teacher:
        teacher_ref, teacher_config, teacher_labels = modeling.teacher_with_labels(cfg)
    student_config = modeling.load_model_config(student_ref, cfg)
    modeling.check_family(student_config, "student", cfg.student)
    tokenizer = modeling.load_tokenizer(student_ref, cfg)
    if use_teacher and cfg.teacher_mode == "online":
        teacher_tok = modeling.load_tokenizer(teacher_ref, cfg)
        if data.tokenizer_fingerprint(teacher_tok) != data.tokenizer_fingerprint(tokenizer):
            raise UsageError(
                "--teacher-mode online needs teacher and student to share a tokenizer; "
                "the default cached mode works with different tokenizers"
            )
    with args.main_process_first(local=False, desc="prepare dataset"):
        prepared = data.load_for_training(cfg, tokenizer, student_ref.location, teacher_labels, cfg.teacher)
    dsd, labels = prepared.datasets, prepared.label_names

    transformers.set_seed(cfg.seed)  # before the model is built: the new classifier head is random
    model = modeling.load_classifier(student_ref, cfg, labels)
    layers_kept = modeling.keep_layers(model, cfg.student_layers) if cfg.student_layers else None

    train_ds = dsd["train"]
    teacher_model, cached_logits, teacher_cache_s, cache_reused = None, None, 0.0, None
    if teacher_ref is not None:
        if teacher_config.model_type != student_config.model_type and is_main:
            warn(
                f"teacher is {teacher_config.model_type}, student is {student_config.model_type}: "
                "distillation works best within one model type"
            )
        start = time.perf_counter()
        if cfg.teacher_mode == "cached" and args.alpha < 1.0:
            with args.main_process_first(local=False, desc="teacher logits"):
                cached_logits, cache_reused = teacher_logits(cfg, teacher_ref, teacher_config, list(train_ds["text"]))
        elif cfg.teacher_mode == "online":
            teacher_model = modeling.load_for_inference(teacher_ref, cfg)
        teacher_cache_s = time.perf_counter() - start
    train_ds = add_row_and_length(train_ds)

    progress, stopper = RichProgress(f"{command} {final.name}"), StopOnSignal()
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dsd["validation"],
        processing_class=tokenizer,
        data_collator=DistillCollator(tokenizer, cached_logits),
        compute_metrics=metrics_fn(labels, prepared.manifest.get("oos_label")),
        teacher_model=teacher_model,
        callbacks=[progress, stopper],
    )
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)

    stopper.install()
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        stopper.uninstall()
    train_s = time.perf_counter() - start
    if stopper.signum is not None:
        again = list(argv if argv is not None else sys.argv[1:]) + (["--name", final.name] if generated else [])
        again = [a for a in again if a not in ("--resume", "--overwrite")] + ["--resume"]
        raise Interrupted(
            f"interrupted: checkpoint saved under {partial}; resume with: distill {shlex.join(again)}",
            stopper.signum,
        )

    history = trainer.state.log_history
    epochs = [_strip(h) for h in history if "eval_accuracy" in h]
    summary = {
        "command": command,
        "output": str(final),
        "name": final.name,
        "config": cfg.model_dump(mode="json"),
        "student": {
            "spec": cfg.student,
            "location": student_ref.location,
            "layers_kept": layers_kept,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "teacher": None
        if teacher_ref is None
        else {
            "spec": cfg.teacher,
            "location": teacher_ref.location,
            "mode": cfg.teacher_mode,
            "cache_reused": cache_reused,
        },
        "dataset": {
            "path": str(prepared.path),
            "source": prepared.manifest["source"],
            "manifest_hash": prepared.manifest["content_hash"],
            "splits": prepared.manifest["splits"],
            "oos_label": prepared.manifest.get("oos_label"),
        },
        "labels": labels,
        "seed": cfg.seed,
        "world_size": args.world_size,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "distill": __version__,
        },
        "train_s": round(train_s, 2),
        "teacher_cache_s": round(teacher_cache_s, 2),
        # Of train_s, the time spent evaluating after each epoch: benchmarks subtract it.
        "eval_s": round(sum(h.get("eval_runtime", 0.0) for h in history if "eval_accuracy" in h), 2),
        "epochs": epochs,
        "metrics": epochs[-1] if epochs else {},
    }
    trainer.save_model(str(partial))
    if is_main:
        finish_run(partial, final, summary)
    return summary


def _strip(entry: dict) -> dict:
    """An evaluation log entry without the ``eval_`` prefixes and timing noise."""
    keep = ("epoch", "eval_loss", "eval_accuracy", "eval_macro_f1", "eval_in_scope_accuracy", "eval_oos_recall")
    return {k.removeprefix("eval_"): entry[k] for k in keep if k in entry}


def metrics_fn(labels: list[str], oos_label: str | None):
    oos_id = labels.index(oos_label) if oos_label in labels else None

    def compute(eval_pred):
        logits, label_ids = eval_pred
        return classification_metrics(label_ids, np.argmax(logits, axis=-1), oos_id)

    return compute


def finish_run(partial: Path, final: Path, summary: dict) -> None:
    """Drop checkpoints and pickles, write run.json, and move the run into place in one rename."""
    for ckpt in partial.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    for pickle in ("training_args.bin",):
        (partial / pickle).unlink(missing_ok=True)
    (partial / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    move_into_place(partial, final)
