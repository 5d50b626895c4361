"""``distill finetune`` and ``distill distill``: the training recipe, as a list of named steps.

``train`` reads top to bottom: check the command, open the run folder (before any compute), load the
models, load the data, build the student, set up the teacher, fit, and finish the run. ``finetune`` is
the same recipe with ``alpha = 1`` and no teacher.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from distill_cli import __version__, modeling
from distill_cli.config import Config
from distill_cli.data.prepared import Prepared, load_for_training, tokenizer_fingerprint
from distill_cli.data.transfer import ExtraRows, check_transfer_file, describe, extra_rows, with_extra_rows
from distill_cli.errors import Interrupted, UsageError
from distill_cli.metrics import QUALITY_KEYS, metrics_fn
from distill_cli.oos import OOSRule, choose_threshold, softmax
from distill_cli.pooling import MeanPoolingClassifier
from distill_cli.runs import (
    DatasetRecord,
    RunFolder,
    RunRecord,
    StudentRecord,
    TeacherRecord,
    finish_run,
    mark_started,
    open_run,
    run_path,
)
from distill_cli.static import PATIENCE, encoder_spec
from distill_cli.static import with_defaults as static_defaults
from distill_cli.training import static_student
from distill_cli.training.callbacks import RichProgress, StopOnSignal
from distill_cli.training.head import head_features, probe
from distill_cli.training.teacher_cache import compute_logits, teacher_logits
from distill_cli.training.trainer import (
    DistillationTrainer,
    DistillationTrainingArguments,
    DistillCollator,
    add_row_and_length,
    recipe_arguments,
)
from distill_cli.ui import info, warn


@dataclass
class Models:
    """The student to train and, for ``distill``, the teacher it learns from."""

    student: modeling.ModelRef
    student_config: object
    tokenizer: object
    teacher: modeling.ModelRef | None = None
    teacher_config: object | None = None
    teacher_labels: list[str] | None = None


@dataclass
class TeacherSetup:
    """How the teacher reaches the loss: cached logits, or a model run on every step."""

    logits: torch.Tensor | None = None
    model: torch.nn.Module | None = None
    seconds: float = 0.0
    cache_reused: bool | None = None


@dataclass
class Setup:
    """Everything a run needs before its student is built. ``distill search`` builds it once and shares it
    with every trial: the teacher's logits, the data and the probe's frozen features are paid for once."""

    models: Models
    prepared: Prepared
    teacher: TeacherSetup
    oos_label: str | None
    rows: ExtraRows = field(default_factory=ExtraRows)  # the transfer-set and augmented rows of the train split
    probe_features: dict[int | None, torch.Tensor] = field(default_factory=dict)  # by student_layers


@dataclass
class Trained:
    """A student after training, with what finishing its run needs."""

    cfg: Config
    command: str
    trainer: DistillationTrainer
    layers_kept: list[int] | None
    train_s: float


def train(cfg: Config, command: str, resume: bool = False, overwrite: bool = False) -> RunRecord:
    """Run ``finetune`` or ``distill`` end to end; the record is also written to the run's ``run.json``."""
    cfg = static_defaults(cfg)
    check_command(cfg, command)
    student_ref = modeling.resolve_model(cfg.student, cfg)
    args = training_arguments(cfg, command)
    run = open_run_folder(cfg, command, args, resume, overwrite)
    try:
        setup = shared_setup(cfg, command, args, student_ref, teacher_alpha=args.alpha)
        model, layers_kept = build_student(cfg, setup)
        if run.resume_from is None:
            probe_head(cfg, args, model, setup)
        trainer = build_trainer(args, model, setup, [RichProgress(f"{command} {run.final.name}"), StopOnSignal()])
        train_s = fit(trainer, run)
        return finish_training(Trained(cfg, command, trainer, layers_kept, train_s), run, setup)
    finally:
        run.release()


def shared_setup(cfg: Config, command: str, args, student_ref: modeling.ModelRef, teacher_alpha: float) -> Setup:
    """Models, data (with the transfer-set and augmented rows), the out-of-scope check and the teacher (its
    logits when ``teacher_alpha < 1``)."""
    models = load_models(cfg, command, student_ref)
    prepared = load_data(cfg, args, models)
    oos_label = check_oos_rule(cfg, prepared)
    rows = add_extra_rows(cfg, args, prepared, models.tokenizer)
    needs_logits = teacher_alpha if not rows.texts else 0.0  # rows only the teacher labels need its logits
    teacher = setup_teacher(cfg, args, models, list(prepared.datasets["train"]["text"]), needs_logits)
    return Setup(models, prepared, teacher, oos_label, rows)


def add_extra_rows(cfg: Config, args, prepared: Prepared, tokenizer) -> ExtraRows:
    """Append the transfer-set and augmented rows to the training split (``data/transfer.py``)."""
    dsd = prepared.datasets
    held_out = [t for split in ("validation", "test") if split in dsd for t in dsd[split]["text"]]
    mask = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[UNK]"
    rows = extra_rows(cfg, list(dsd["train"]["text"]), held_out, mask)
    if rows.counts:
        dsd["train"] = with_extra_rows(dsd["train"], rows, tokenizer, cfg.max_length)
        if args.process_index == 0:
            info(describe(rows.counts))
    return rows


def finish_training(trained: Trained, run: RunFolder, setup: Setup, search: dict | None = None) -> RunRecord:
    """Choose the out-of-scope rule, save the model and move the run folder into place."""
    oos_rule = choose_oos_rule(trained.cfg, trained.trainer, setup.prepared, setup.oos_label)
    record = run_record(trained, run, setup, oos_rule)
    record.search = search
    save_model(trained.trainer, run.partial)
    if trained.trainer.args.process_index == 0:
        finish_run(run, record)
    return record


def is_static_spec(cfg: Config) -> bool:
    """The student is ``static:<encoder>``."""
    return encoder_spec(cfg.student) is not None


def check_command(cfg: Config, command: str) -> None:
    """What each command needs before any compute is spent."""
    if command == "finetune" and cfg.alpha < 1.0:
        raise UsageError(
            f"alpha={cfg.alpha} needs a teacher: finetune trains on the labels alone (alpha 1); "
            "use `distill distill --teacher NAME` to distill"
        )
    if command == "distill" and not cfg.teacher:
        raise UsageError("distill needs a teacher: pass --teacher NAME or set 'teacher' in the config")
    if is_static_spec(cfg) and cfg.student_layers:
        raise UsageError("--student-layers cuts a transformer; a static student has no layers")
    if is_static_spec(cfg) and cfg.teacher_mode == "online":
        raise UsageError("a static student learns from cached teacher logits: drop --teacher-mode online")
    if (cfg.transfer_set or cfg.augment) and (command == "finetune" or cfg.alpha >= 1.0):
        raise UsageError("--transfer-set and --augment add rows that only the teacher labels: use distill, alpha < 1")
    check_transfer_file(cfg.transfer_set)
    check_trackers(cfg.report_to)


def check_trackers(names: list[str]) -> None:
    """``report_to`` names that transformers knows and that are installed, before any compute."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    available = get_available_reporting_integrations()
    for name in names:
        if name == "all":
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            raise UsageError(f"report_to {name}: not a tracker transformers knows (none, all, {known})")
        if name not in available:
            raise UsageError(f"report_to {name}: its package is not installed (pip install {name})")


def training_arguments(
    cfg: Config, command: str, output_dir: Path | None = None, checkpoints: bool = True
) -> DistillationTrainingArguments:
    """The config's recipe plus what every run of this tool sets (epoch checkpoints, no pickles, CPU).
    Without ``output_dir``, the run folder is set once its name is known on every rank."""
    return DistillationTrainingArguments(
        output_dir=str(output_dir or cfg.runs_dir / ".pending"),
        **recipe_arguments(cfg),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        data_seed=cfg.seed,
        save_strategy="epoch" if checkpoints else "no",
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=10,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=False,
        alpha=cfg.alpha if command == "distill" else 1.0,
        transfer_weight=cfg.transfer_weight,
        **(static_arguments(checkpoints) if is_static_spec(cfg) else {}),
    )


def static_arguments(checkpoints: bool) -> dict:
    """Its forward takes no labels: the Trainer is told where they are (else it passes them to the forward).
    A run (with checkpoints) trains until validation accuracy stops improving and keeps its best epoch; a
    search trial trains for the epochs it was given."""
    best = dict(load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True)
    return dict(label_names=["labels"], **(best if checkpoints else {}))


def open_run_folder(cfg: Config, command: str, args, resume: bool, overwrite: bool) -> RunFolder:
    final, generated = run_path(cfg, command)
    final = Path(same_on_all_ranks(str(final)))
    locks = cfg.cache_root() / "locks"
    is_main, settings = args.process_index == 0, cfg.training_settings()
    run = open_run(final, generated, resume, overwrite, is_main, args.world_size, locks, settings)
    args.output_dir = str(run.partial)
    return run


def same_on_all_ranks(text: str) -> str:
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


def load_models(cfg: Config, command: str, student_ref: modeling.ModelRef) -> Models:
    """Configs and tokenizers; labels come from the teacher when there is one (the student takes them over)."""
    models = Models(student_ref, None, None)
    if command == "distill":
        models.teacher, models.teacher_config, models.teacher_labels = modeling.teacher_with_labels(cfg)
    models.student_config = modeling.load_model_config(student_ref, cfg)
    if not is_static_spec(cfg):  # model2vec makes static vectors of any encoder
        modeling.check_family(models.student_config, "student", cfg.student)
        check_max_length(cfg, models.student_config, "student")
    models.tokenizer = modeling.load_tokenizer(student_ref, cfg)
    if models.teacher is None:
        return models
    teacher_tokenizer = modeling.load_tokenizer(models.teacher, cfg)  # checked now, before any compute
    same = tokenizer_fingerprint(teacher_tokenizer) == tokenizer_fingerprint(models.tokenizer)
    if cfg.teacher_mode == "online" and not same:
        raise UsageError(
            "--teacher-mode online needs teacher and student to share a tokenizer; "
            "the default cached mode works with different tokenizers"
        )
    return models


def check_max_length(cfg: Config, model_config, role: str) -> None:
    """``max_length`` within the positions the model has, before anything is built."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and cfg.max_length > positions:
        raise UsageError(f"--max-length {cfg.max_length}: the {role} reads at most {positions} tokens")


def load_data(cfg: Config, args, models: Models) -> Prepared:
    """Rank 0 prepares (or reuses) the dataset first; the other ranks then read it from the cache."""
    with args.main_process_first(local=False, desc="prepare dataset"):
        return load_for_training(cfg, models.tokenizer, models.student.location, models.teacher_labels, cfg.teacher)


def check_oos_rule(cfg: Config, prepared: Prepared) -> str | None:
    """The out-of-scope label the rule will be chosen for, or None. A rule the data cannot support is
    refused here, before training, when asked for (``threshold``), and skipped with a warning for ``auto``."""
    if cfg.oos_rule == "none":
        return None
    oos_label = prepared.manifest.get("oos_label")
    if oos_label is None:
        problem = f"the data has no '{cfg.oos_label}' label; name it with --oos-label"
    else:
        validation, oos_id = prepared.datasets["validation"]["label"], prepared.label_names.index(oos_label)
        oos_rows = sum(1 for y in validation if y == oos_id)
        ok = 0 < oos_rows < len(validation)
        problem = None if ok else f"the validation split needs queries both labelled '{oos_label}' and not"
    if problem is None:
        return oos_label
    if cfg.oos_rule == "threshold":
        raise UsageError(f"oos_rule threshold needs an out-of-scope label: {problem}, or set oos_rule to none")
    if oos_label is not None:
        warn(f"no out-of-scope rule: {problem}")
    return None


def build_student(cfg: Config, setup: Setup):
    """The student classifier over the data's labels, cut to ``cfg.student_layers``; returns it and the
    layers kept."""
    transformers.set_seed(cfg.seed)  # before the model is built: the new classifier head is random
    if is_static_spec(cfg):
        return static_student.build_student(setup.models.student, cfg, setup.prepared.label_names), None
    model = modeling.load_classifier(setup.models.student, cfg, setup.prepared.label_names)
    layers_kept = modeling.keep_layers(model, cfg.student_layers) if cfg.student_layers else None
    return model, layers_kept


def setup_teacher(cfg: Config, args, models: Models, train_texts: list[str], alpha: float) -> TeacherSetup:
    """Cached mode: the teacher's logits over the training texts, computed once (by rank 0) or read back;
    none when ``alpha`` is 1 (the labels alone). Online mode: the teacher model itself, run on every step."""
    setup = TeacherSetup()
    if models.teacher is None:
        return setup
    if models.teacher_config.model_type != models.student_config.model_type and args.process_index == 0:
        warn(
            f"teacher is {models.teacher_config.model_type}, student is {models.student_config.model_type}: "
            "distillation works best within one model type"
        )
    start = time.perf_counter()
    if cfg.teacher_mode == "cached" and alpha < 1.0:
        with args.main_process_first(local=False, desc="teacher logits"):
            setup.logits, setup.cache_reused = teacher_logits(cfg, models.teacher, models.teacher_config, train_texts)
    elif cfg.teacher_mode == "online":
        setup.model = modeling.load_for_inference(models.teacher, cfg)
    setup.seconds = time.perf_counter() - start
    return setup


def probe_head(cfg: Config, args, model, setup: Setup) -> None:
    """Fit the head on the frozen body first (``training/head.py``); a student fits it to the teacher's
    soft targets with the run's own alpha and temperature. The frozen features are kept in ``setup``.
    Not for ``head_init random``, nor for a static student (model2vec's head starts as model2vec makes it)."""
    if cfg.head_init != "probe" or is_static_spec(cfg):
        return
    train_ds, teacher, tokenizer = setup.prepared.datasets["train"], setup.teacher, setup.models.tokenizer
    logits = teacher.logits
    if logits is None and teacher.model is not None and args.alpha < 1.0:
        logits = compute_logits(teacher.model, tokenizer, list(train_ds["text"]), cfg.max_length)
    alpha = args.alpha if logits is not None else 1.0
    features = setup.probe_features.get(cfg.student_layers)
    if features is None:
        features = setup.probe_features[cfg.student_layers] = head_features(
            model, tokenizer, list(train_ds["text"]), cfg.max_length
        )
    probe(model, features, torch.tensor(train_ds["label"]), logits, alpha, cfg.temperature)


def build_trainer(args: DistillationTrainingArguments, model, setup: Setup, callbacks: list) -> DistillationTrainer:
    prepared = setup.prepared
    collator = DistillCollator(setup.models.tokenizer, setup.teacher.logits)
    if isinstance(model, static_student.StaticStudent):
        collator = static_student.StaticCollator(model, setup.teacher.logits)
        if args.load_best_model_at_end:
            callbacks = [*callbacks, transformers.EarlyStoppingCallback(early_stopping_patience=PATIENCE)]
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=add_row_and_length(prepared.datasets["train"]),
        eval_dataset=prepared.datasets["validation"],
        processing_class=setup.models.tokenizer,
        data_collator=collator,
        compute_metrics=metrics_fn(prepared.label_names, prepared.manifest.get("oos_label")),
        teacher_model=setup.teacher.model,
        callbacks=callbacks,
    )
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # its raw dicts would go to stdout
    return trainer


def fit(trainer: DistillationTrainer, run: RunFolder) -> float:
    """Train (or resume); a signal saves a checkpoint and raises ``Interrupted``. Returns the seconds spent."""
    stopper = next(c for c in trainer.callback_handler.callbacks if isinstance(c, StopOnSignal))
    if trainer.args.process_index == 0:
        mark_started(run)
    stopper.install()
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    finally:
        stopper.uninstall()
    if stopper.signum is not None:
        raise Interrupted(run.partial, stopper.signum, run.final.name if run.generated else None)
    return time.perf_counter() - start


def choose_oos_rule(cfg: Config, trainer, prepared: Prepared, oos_label: str | None) -> OOSRule | None:
    """The out-of-scope threshold, chosen on validation (see ``oos.py``)."""
    if oos_label is None:
        return None
    # Labels as the Trainer returns them: with length grouping, predictions do not come in dataset order.
    output = trainer.predict(prepared.datasets["validation"])
    oos_id = prepared.label_names.index(oos_label)
    return choose_threshold(softmax(output.predictions), output.label_ids, oos_id, oos_label, cfg.oos_share)


def save_model(trainer: DistillationTrainer, folder: Path) -> None:
    """The weights and tokenizer; a mean-pooled model also writes its config and sentence-transformers files,
    a static student its model2vec pipeline."""
    if isinstance(trainer.model, static_student.StaticStudent):
        if trainer.args.should_save:
            trainer.model.save(folder)
    elif isinstance(trainer.model, MeanPoolingClassifier):
        if trainer.args.should_save:
            trainer.model.save_pretrained(folder)
            trainer.processing_class.save_pretrained(folder)
    else:
        trainer.save_model(str(folder))


def run_record(trained: Trained, run: RunFolder, setup: Setup, oos_rule: OOSRule | None) -> RunRecord:
    """What ``run.json`` records of this run."""
    cfg, command, trainer, layers_kept = trained.cfg, trained.command, trained.trainer, trained.layers_kept
    models, prepared, teacher = setup.models, setup.prepared, setup.teacher
    history = trainer.state.log_history
    epochs = [epoch_metrics(h) for h in history if "eval_accuracy" in h]
    manifest = prepared.manifest
    return RunRecord(
        command=command,
        output=str(run.final),
        name=run.final.name,
        config=cfg.model_dump(mode="json"),
        student=StudentRecord(
            spec=cfg.student,
            location=models.student.location,
            layers_kept=layers_kept,
            parameters=sum(p.numel() for p in trainer.model.parameters()),
            pooling="static" if is_static_spec(cfg) else pooling_name(trainer.model),
            head_init="model2vec" if is_static_spec(cfg) else cfg.head_init,
        ),
        teacher=None
        if models.teacher is None
        else TeacherRecord(
            spec=cfg.teacher, location=models.teacher.location, mode=cfg.teacher_mode, cache_reused=teacher.cache_reused
        ),
        dataset=DatasetRecord(
            path=str(prepared.path),
            source=manifest["source"],
            manifest_hash=manifest["content_hash"],
            splits=manifest["splits"],
            oos_label=manifest.get("oos_label"),
        ),
        labels=prepared.label_names,
        seed=cfg.seed,
        world_size=trainer.args.world_size,
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "distill": __version__,
        },
        train_s=round(trained.train_s, 2),
        teacher_cache_s=round(teacher.seconds, 2),
        eval_s=round(sum(h.get("eval_runtime", 0.0) for h in history if "eval_accuracy" in h), 2),
        epochs=epochs,
        metrics=final_metrics(epochs, trainer.args.load_best_model_at_end),
        oos_rule=oos_rule,
        rows=setup.rows.counts or None,
    )


def final_metrics(epochs: list[dict], best_kept: bool) -> dict:
    """The metrics of the model that is saved: the last epoch's, or the best one's when the Trainer kept the
    best (the first of equals, as the Trainer does)."""
    if not epochs:
        return {}
    return max(epochs, key=lambda e: e.get("accuracy") or 0.0) if best_kept else epochs[-1]


def pooling_name(model) -> str:
    return "mean" if isinstance(model, MeanPoolingClassifier) else "cls"


def epoch_metrics(entry: dict) -> dict:
    """An evaluation log entry without the ``eval_`` prefixes and timing noise."""
    out = {"epoch": entry["epoch"]} if "epoch" in entry else {}
    out.update({k: entry[f"eval_{k}"] for k in ("loss", *QUALITY_KEYS) if f"eval_{k}" in entry})
    return out


def summary(record: RunRecord) -> dict:
    """The ``--json`` object of ``finetune`` and ``distill``."""
    return record.model_dump(
        mode="json", include={"output", "train_s", "teacher_cache_s", "epochs", "metrics", "rows"}, exclude_none=True
    )


def render(record: RunRecord) -> None:
    """The per-epoch validation table and the timings, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.metrics import QUALITY
    from distill_cli.ui import console

    table = Table(title=f"{record.command} → {record.output}", title_justify="left")
    for col in ("epoch", "loss", *(m.short for m in QUALITY)):
        table.add_column(col, justify="right")
    for e in record.epochs:
        cells = [e.get(k) for k in ("epoch", "loss", *QUALITY_KEYS)]
        table.add_row(*("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells))
    console.print(table)
    console.print(f"train {record.train_s:.1f}s, teacher logits {record.teacher_cache_s:.1f}s")
