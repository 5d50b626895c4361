"""The training recipe as small named steps, shared by ``finetune``/``distill`` (``commands/train.py``) and
by every trial of ``distill search`` (``commands/search.py``).

In order: load the models, load the data (with the transfer-set and augmented rows), set up the teacher
(``shared_setup`` does these three once, and a search shares them with every trial), build the student,
fit its head on frozen features, build the trainer, fit, and finish: choose the out-of-scope rule, save
the model and move the run folder into place. Each step takes the run's ``Plan``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import transformers

from distill_cli import inference, modeling, precision
from distill_cli.config import Config
from distill_cli.data.intent_names import name_rows, with_name_rows
from distill_cli.data.prepared import Prepared, load_for_training, tokenizer_fingerprint
from distill_cli.data.transfer import ExtraRows, describe, extra_rows, with_extra_rows
from distill_cli.errors import Interrupted, UsageError
from distill_cli.metrics import metrics_fn
from distill_cli.oos import OOSRule, choose_rule
from distill_cli.oos_scores import AUTO_SCORES, FEATURE_SCORES, FeatureStats
from distill_cli.pooling import MeanPoolingClassifier
from distill_cli.runs import RunFolder, finish_run, mark_started
from distill_cli.training import static_student
from distill_cli.training.callbacks import StopOnSignal
from distill_cli.training.head import PROBE_ROWS, head_features, probe
from distill_cli.training.hidden import layer_map
from distill_cli.training.plan import Plan, for_data
from distill_cli.training.record import run_record
from distill_cli.training.setup import Models, OOSChoice, Setup, TeacherSetup, Trained
from distill_cli.training.teacher_cache import compute_logits
from distill_cli.training.teachers import teacher_from
from distill_cli.training.trainer import (
    DistillationTrainer,
    DistillCollator,
    add_projection,
    add_row_and_length,
    remove_projection,
)
from distill_cli.ui import info, warn


def shared_setup(plan: Plan, student_ref: modeling.ModelRef, cfg: Config | None = None) -> tuple[Plan, Setup]:
    """Models, data (with the transfer-set and augmented rows), the out-of-scope check and the teacher. With
    ``cfg`` (the config ``plan`` was made from), the plan is made again with the recipe the data calls for
    (``plan.for_data``) as soon as the data is read, before any step reads a setting it sets (the augmented
    rows, the teacher's pass over them); returns the plan the run goes on with."""
    models = load_models(plan, student_ref)
    prepared = load_data(plan, models)
    if cfg is not None:
        plan = for_data(plan, cfg, prepared.manifest, getattr(models.student_config, "hidden_size", None))
    oos = check_oos_rule(plan, prepared)
    held_out = held_out_texts(prepared)
    names = add_name_rows(plan, prepared, models.tokenizer, held_out)
    rows = add_extra_rows(plan, prepared, models.tokenizer, held_out)
    rows.counts.update(names)
    teacher = setup_teacher(plan, models, prepared)
    return plan, Setup(models, prepared, teacher, oos, rows)


def load_models(plan: Plan, student_ref: modeling.ModelRef) -> Models:
    """Configs and tokenizers; labels come from the teacher when there is one (the student takes them over)."""
    cfg, models = plan.cfg, Models(student_ref, None, None)
    if plan.command == "distill":
        models.teacher = teacher_from(cfg)
    models.student_config = modeling.load_model_config(student_ref, cfg)
    if not plan.static:  # model2vec makes static vectors of any encoder
        modeling.check_family(models.student_config, "student", cfg.student)
        check_max_length(plan, models.student_config, "student")
    models.tokenizer = modeling.load_tokenizer(student_ref, cfg)
    if models.teacher_model is None:  # no teacher, or a file of labels
        return models
    teacher_tokenizer = modeling.load_tokenizer(models.teacher_model.ref, cfg)  # checked now, before any compute
    same = tokenizer_fingerprint(teacher_tokenizer) == tokenizer_fingerprint(models.tokenizer)
    if cfg.teacher_mode == "online" and not same:
        raise UsageError(
            "--teacher-mode online needs teacher and student to share a tokenizer; "
            "the default cached mode works with different tokenizers"
        )
    if cfg.hidden_weight > 0:
        check_hidden_matching(cfg, models, same)
    return models


def check_hidden_matching(cfg, models: Models, same_tokenizer: bool) -> None:
    """Hidden-state matching compares token vectors one for one: one tokenizer, one width, and a layer map
    that names a teacher layer for each student layer (before compute)."""
    if cfg.layer_map:
        student_layers = cfg.student_layers or models.student_config.num_hidden_layers
        layer_map(cfg.layer_map, student_layers, models.teacher_model.config.num_hidden_layers, None)
    widths = [getattr(c, "hidden_size", None) for c in (models.teacher_model.config, models.student_config)]
    if not same_tokenizer:
        raise UsageError("--hidden-weight matches token vectors one for one: teacher and student must share a "
                         "tokenizer (the logits alone cross tokenizers: --hidden-weight 0)")  # fmt: skip
    if widths[0] != widths[1]:
        raise UsageError(f"--hidden-weight needs teacher and student of one width (hidden size {widths[0]} and "
                         f"{widths[1]})")  # fmt: skip


def check_max_length(plan: Plan, model_config, role: str) -> None:
    """``max_length`` within the positions the model has, before anything is built."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and plan.cfg.max_length > positions:
        raise UsageError(f"--max-length {plan.cfg.max_length}: the {role} reads at most {positions} tokens")


def load_data(plan: Plan, models: Models) -> Prepared:
    """Rank 0 prepares (or reuses) the dataset first; the other ranks then read it from the cache."""
    cfg = plan.cfg
    with plan.args.main_process_first(local=False, desc="prepare dataset"):
        location, labels = models.student.location, models.teacher_labels
        return load_for_training(cfg, models.tokenizer, location, labels, cfg.lead_teacher)


def check_oos_rule(plan: Plan, prepared: Prepared) -> OOSChoice | None:
    """The out-of-scope rule the run will choose, or None. A rule the data cannot support is refused here,
    before training, when asked for (``threshold``), and skipped with a warning for ``auto``. Data with no
    out-of-scope label at all gets the fallback, unless ``oos_reject`` is 0."""
    cfg = plan.cfg
    if cfg.oos_rule == "none":
        return None
    oos_label = prepared.manifest.oos_label
    if oos_label is None:
        if cfg.oos_rule == "threshold":
            raise UsageError(
                f"oos_rule threshold needs an out-of-scope label: the data has no '{cfg.oos_label}' label; add "
                "out-of-scope queries to validation (or name their label with --oos-label), or use the fallback "
                "(oos_rule auto, with oos_reject above 0)"
            )
        return OOSChoice("fallback", cfg.oos_label) if cfg.oos_reject > 0 else None
    validation, oos_id = prepared.datasets["validation"]["label"], prepared.label_names.index(oos_label)
    oos_rows = sum(1 for y in validation if y == oos_id)
    if 0 < oos_rows < len(validation):
        return OOSChoice("expected_accuracy", oos_label)
    if prepared.manifest.open_set and not oos_rows and cfg.oos_rule == "auto" and cfg.oos_reject > 0:
        return OOSChoice("fallback", oos_label)  # out-of-scope queries in test alone: nothing to choose on
    problem = f"the validation split needs queries both labelled '{oos_label}' and not"
    if cfg.oos_rule == "threshold":
        raise UsageError(
            f"oos_rule threshold needs an out-of-scope label: {problem}; add out-of-scope queries to validation, "
            "use the fallback (oos_rule auto, with oos_reject above 0), or set oos_rule to none"
        )
    warn(f"no out-of-scope rule: {problem}")
    return None


def held_out_texts(prepared: Prepared) -> list[str]:
    """The validation and test queries, which no added row may equal."""
    dsd = prepared.datasets
    return [t for split in ("validation", "test") if split in dsd for t in dsd[split]["text"]]


def add_name_rows(plan: Plan, prepared: Prepared, tokenizer, held_out: list[str]) -> dict[str, int]:
    """With ``intent_names``, each intent's name as one more labelled training query (``data/intent_names.py``),
    none equal to a ``held_out`` query; returns the counts ``run.json`` records (none without it)."""
    if not plan.cfg.intent_names:
        return {}
    train = prepared.datasets["train"]
    names = train.features["label"].names
    rows, counts = name_rows(names, prepared.manifest.oos_label, list(train["text"]), held_out)
    prepared.datasets["train"] = with_name_rows(train, rows, tokenizer, plan.cfg.max_length)
    if plan.is_main:
        equal = counts["names_as_evaluation_queries"] + counts["names_as_training_queries"]
        skipped = [f"{counts['names_not_words']:,} read as no words"] if counts["names_not_words"] else []
        skipped += [f"{equal:,} equal to a query of the data"] if equal else []
        info(f"intent names: {len(rows):,} added as training queries" + "".join(f"; {s}" for s in skipped))
    return counts


def add_extra_rows(plan: Plan, prepared: Prepared, tokenizer, held_out: list[str]) -> ExtraRows:
    """Append the transfer-set and augmented rows to the training split (``data/transfer.py``), none equal to a
    ``held_out`` query."""
    cfg, dsd = plan.cfg, prepared.datasets
    mask = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None) or "[UNK]"
    rows = extra_rows(cfg, list(dsd["train"]["text"]), held_out, mask)
    if rows.counts:
        dsd["train"] = with_extra_rows(dsd["train"], rows, tokenizer, cfg.max_length)
        if plan.is_main:
            info(describe(rows.counts))
    return rows


def setup_teacher(plan: Plan, models: Models, prepared: Prepared) -> TeacherSetup:
    """Cached mode: the teacher's logits over the training texts (``training/teachers.py``), computed once (each
    process its share) or read back, when the plan needs them. Online mode: the teacher model itself, run on
    every step."""
    cfg, setup, teacher, model = plan.cfg, TeacherSetup(), models.teacher, models.teacher_model
    if teacher is None:
        return setup
    # Teacher and student may differ in architecture and vocabulary: the cache holds logits over the labels,
    # and MiniLM-L6 from MPNet is the suite's best student (BENCHMARKS.md), so nothing is said of it.
    start, texts = time.perf_counter(), prepared.datasets["train"]["text"]  # a column, read a piece at a time
    if cfg.teacher_mode == "cached" and plan.teacher_logits:  # every process labels its share of the rows
        found = teacher.targets(cfg, texts, prepared.model_labels)
        setup.logits, setup.cache_reused = found.logits, found.cache_reused
        if found.covered is not None:  # a file: the rows it did not cover keep their label alone
            setup.labelled_by_file, setup.labels_alone = found.covered, len(texts) - found.covered
            if plan.is_main:
                info(f"teacher labels: {found.covered:,} of {len(texts):,} training rows from {teacher.spec}")
    elif cfg.teacher_mode == "online":
        setup.model = model.model(cfg)
    if cfg.hidden_weight > 0:  # its layers' token vectors, every step
        setup.hidden_model = setup.model or model.model(cfg)
    if cfg.teacher_mode == "cached" and cfg.feature_weight > 0:  # the geometry loss's targets, cached alike
        setup.features = model.features(cfg, texts)
    setup.seconds = time.perf_counter() - start
    return setup


def build_student(plan: Plan, setup: Setup):
    """The student classifier over the data's labels, cut to ``student_layers``; returns it and the layers
    kept."""
    cfg = plan.cfg
    # The static model first: making it on a cold cache draws random numbers, which must not move the
    # head's start (a rerun on a warm cache would train another model).
    static = static_student.static_model(setup.models.student, cfg) if plan.static else None
    transformers.set_seed(cfg.seed)  # before the model is built: the new classifier head is random
    if static is not None:
        return static_student.build_student(static, cfg, setup.prepared.model_labels), None
    model = modeling.load_classifier(setup.models.student, cfg, setup.prepared.model_labels)
    layers_kept = modeling.keep_layers(model, cfg.student_layers) if cfg.student_layers else None
    return model, layers_kept


def probe_head(plan: Plan, model, setup: Setup) -> None:
    """Fit the head on the frozen body first (``training/head.py``); a student fits it to the teacher's
    soft targets with the plan's alpha and temperature. The frozen features are kept in ``setup``.
    Not for ``head_init random``, nor for a static student (model2vec's head starts as model2vec makes it)."""
    cfg = plan.cfg
    if cfg.head_init != "probe" or plan.static:
        return
    train_ds, teacher, tokenizer = setup.prepared.datasets["train"], setup.teacher, setup.models.tokenizer
    train_ds = train_ds.select(range(min(len(train_ds), PROBE_ROWS)))  # the labelled rows come first
    half = precision.resolve(cfg.precision)
    logits = None if teacher.logits is None else teacher.logits[: len(train_ds)]
    if logits is None and teacher.model is not None and plan.alpha < 1.0:
        logits = compute_logits(teacher.model, tokenizer, list(train_ds["text"]), cfg.max_length, precision=half)
    alpha = plan.alpha if logits is not None else 1.0
    features = setup.probe_features.get(cfg.student_layers)
    if features is None:
        texts = list(train_ds["text"])
        features = setup.probe_features[cfg.student_layers] = head_features(
            model.to(precision.device()), tokenizer, texts, cfg.max_length, half
        )
    probe(model, features, torch.tensor(train_ds["label"]), logits, alpha, cfg.temperature, cfg.kd_loss)


def build_trainer(plan: Plan, model, setup: Setup, callbacks: list, layers_kept=None) -> DistillationTrainer:
    prepared, args = setup.prepared, plan.args
    matching = {}
    if args.hidden_weight > 0:  # each student layer and the teacher layer it matches (training/hidden.py)
        teacher = setup.teacher.hidden_model
        kept = layers_kept if setup.models.student.location == setup.models.teacher.location else None
        counts = (model.config.num_hidden_layers, teacher.config.num_hidden_layers)
        matching = dict(hidden_teacher=teacher, layer_map=layer_map(plan.cfg.layer_map, *counts, kept))
    collator = DistillCollator(setup.models.tokenizer, setup.teacher.logits, setup.teacher.features)
    if args.feature_weight > 0:
        add_projection(model, setup.teacher.features.shape[1])
    if isinstance(model, static_student.StaticStudent):
        collator = static_student.StaticCollator(model, setup.teacher.logits, setup.teacher.features)
    wait = plan.cfg.patience  # the plan filled in the default wherever the best epoch is kept
    if args.load_best_model_at_end and wait:
        callbacks = [*callbacks, transformers.EarlyStoppingCallback(early_stopping_patience=wait)]
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=add_row_and_length(prepared.datasets["train"]),
        eval_dataset=prepared.datasets["validation"],
        processing_class=setup.models.tokenizer,
        data_collator=collator,
        compute_metrics=metrics_fn(prepared.label_names, prepared.manifest.oos_label, plan.cfg.oos_share),
        teacher_model=setup.teacher.model,
        callbacks=callbacks,
        **matching,
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


def finish_training(trained: Trained, run: RunFolder, setup: Setup, search: dict | None = None):
    """Save the model, choose its out-of-scope rule on what was saved, and move the run folder into place;
    returns the ``RunRecord`` written to its ``run.json``."""
    save_model(trained.trainer, run.partial)
    oos_rule = choose_oos_rule(trained.plan, run.partial, setup) if trained.plan.is_main else None
    record = run_record(trained, run, setup, oos_rule)
    record.search = search
    if trained.plan.is_main:
        finish_run(run, record)
    return record


def choose_oos_rule(plan: Plan, folder: Path, setup: Setup) -> OOSRule | None:
    """The out-of-scope score and threshold, chosen on validation (see ``oos.py``), for the model as saved in
    ``folder`` (the same model every later command loads). A feature score's statistics are fitted on the
    training split's labelled queries and saved beside the model."""
    oos, prepared, cfg = setup.oos, setup.prepared, plan.cfg
    if oos is None:
        return None
    ref = modeling.resolve_model(str(folder), cfg)
    model, tokenizer = modeling.load_for_inference(ref, cfg), setup.models.tokenizer
    if plan.static:
        from distill_cli.static import StaticTokenizer

        tokenizer = StaticTokenizer()
    else:
        model = model.to(precision.device())  # the GPU the run trained on, if any
    candidates = list(AUTO_SCORES) if cfg.oos_score == "auto" else [cfg.oos_score]
    need_features = any(s in FEATURE_SCORES for s in candidates)
    val = prepared.datasets["validation"]
    logits, features = inference.batched_outputs(
        model, tokenizer, list(val["text"]), cfg.max_length, cfg.eval_batch_size, "out-of-scope rule", need_features
    )
    y = np.asarray(val["label"])
    names = prepared.label_names  # the fallback's label may be in none of them
    oos_id = names.index(oos.oos_label) if oos.oos_label in names else -1
    intents = [i for i in range(logits.shape[1]) if i != oos_id]
    stats = None
    if need_features:
        stats = fit_feature_stats(plan, model, tokenizer, prepared, oos_id)
        stats.calibrate(logits[y != oos_id][:, intents], features[y != oos_id])
    fallback = oos.kind == "fallback"
    share = cfg.oos_reject if fallback else cfg.oos_share
    rule = choose_rule(candidates, fallback, logits, y, oos_id, oos.oos_label, share, features, stats, intents)
    if stats is not None:  # kept even when another score won: `evaluate` reports how every score separates
        if rule.score != "knn":  # the training queries' vectors travel only with a rule that reads them
            stats.bank = None
        stats.save(folder)
    return rule


def fit_feature_stats(plan: Plan, model, tokenizer, prepared: Prepared, oos_id: int) -> FeatureStats:
    """The intents' means and shared covariance of the pooled features of the labelled training queries
    (not the transfer set's, not the out-of-scope ones)."""
    train = prepared.datasets["train"]
    rows = [i for i, y in enumerate(train["label"]) if 0 <= y != oos_id]
    labelled = train.select(rows)
    texts, labels = list(labelled["text"]), np.asarray(labelled["label"])
    _, features = inference.batched_outputs(
        model, tokenizer, texts, plan.cfg.max_length, plan.cfg.eval_batch_size, "out-of-scope statistics", True
    )
    return FeatureStats.fit(features, labels)


def save_model(trainer: DistillationTrainer, folder: Path) -> None:
    """The weights and tokenizer; a mean-pooled model also writes its config and sentence-transformers files,
    a static student its model2vec pipeline. The training-only projection of the geometry loss is left out."""
    remove_projection(trainer.model)
    if isinstance(trainer.model, static_student.StaticStudent):
        if trainer.args.should_save:
            trainer.model.save(folder)
    elif isinstance(trainer.model, MeanPoolingClassifier):
        if trainer.args.should_save:
            trainer.model.save_pretrained(folder)
            trainer.processing_class.save_pretrained(folder)
    else:
        trainer.save_model(str(folder))
