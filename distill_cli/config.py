"""One typed config for every command.

Precedence, lowest first: the defaults below < the command's own defaults (``finetune`` trains with
alpha 1) < the YAML file's top level < the file's section for the command (``finetune:``,
``distill:``, ...) < flags on the command line. Relative paths are taken from the working directory.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, field_validator

from distill_cli.config_file import read_yaml
from distill_cli.errors import UsageError

COMMANDS = ("prepare", "finetune", "distill", "search", "evaluate", "export", "predict", "push")
COMMAND_DEFAULTS: dict[str, dict[str, Any]] = {"finetune": {"alpha": 1.0}}
# A search trains students as ``distill`` does, with its settings; its own ``search:`` section holds the
# search space instead (``search_space.py``).
SETTINGS_OF = {"search": "distill"}
# Validation points that int8 quantization or vocabulary trimming may each lose before `export` refuses to
# write the folder, unless --max-accuracy-drop says otherwise.
DEFAULT_MAX_ACCURACY_DROP = 1.0
# Settings that say where things go or how a run is watched, not what is trained: a study may be continued,
# and an interrupted run resumed, with other values. Every other setting is part of what a run trains.
PLACEMENT = ("name", "output", "runs_dir", "cache_dir", "report_to", "eval_batch_size")
# Epochs without a better expected accuracy before training stops, where the config sets none: model2vec's 5
# for a static student (its epochs cost seconds), 2 for a transformer.
STATIC_PATIENCE, TRANSFORMER_PATIENCE = 5, 2


class Config(BaseModel):
    """Every setting of a run. Unknown keys are errors; numbers given as strings are coerced."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Data
    dataset: str | None = Field(None, description="Prepared folder, data file(s), built-in name or Hub name[:config].")
    text_column: str | None = Field(None, description="Text column (detected when unset).")
    label_column: str | None = Field(None, description="Label column (detected when unset).")
    oos_label: str = Field("oos", description="Name of the out-of-scope label.")
    max_length: PositiveInt = Field(128, description="Truncate queries to this many tokens.")
    validation_size: float = Field(
        0.1, gt=0, lt=1, description="Fraction of train held out when there is no validation split."
    )
    min_examples: PositiveInt = Field(3, description="Data check: warn about labels with fewer training examples.")
    drop_duplicates: bool = Field(False, description="Drop repeated copies of a labelled query within a split.")
    drop_leaks: bool = Field(False, description="Drop validation and test queries that also occur in train.")
    strict: bool = Field(False, description="Data checks (conflicts, copies, leaks, few examples, long texts) fail.")

    # Models
    student: str = Field(
        "distilbert-base-uncased",
        description="Student checkpoint: folder, run name, alias or Hub id; static:<encoder> for a static student.",
    )
    student_layers: PositiveInt | None = Field(None, description="Keep N of the student's layers, spread evenly.")
    teacher: list[str] | str | None = Field(
        None,
        description="Teacher: folder, run name, alias, Hub id or exported ONNX folder; several (--teacher a "
        "--teacher b): an ensemble, combined as teacher_ensemble says.",
    )
    teacher_ensemble: Literal["logits", "probs"] = Field(
        "logits", description="An ensemble of teachers teaches the mean of their logits, or of their probabilities."
    )
    teacher_labels: str | None = Field(
        None,
        description="A teacher that is a file (.jsonl, .csv, .json, .parquet): a text and its label, probs or logits "
        "a row, made outside the tool (an LLM, people); instead of --teacher.",
    )
    teacher_mode: Literal["cached", "online"] = Field(
        "cached", description="cached (teacher logits computed once) or online (every step)."
    )
    pooling: Literal["auto", "cls", "mean"] = Field(
        "auto", description="Sentence vector for the head: auto (the checkpoint's own), cls or mean."
    )
    head_init: Literal["probe", "random"] = Field(
        "probe",
        description="probe: fit the head on frozen features first; random: the checkpoint's head, else random.",
    )
    static_dims: PositiveInt = Field(
        256, description="Static students (static:<encoder>): dimensions of the token vectors, by PCA."
    )
    transfer_set: str | None = Field(
        None, description="Unlabelled queries (.txt, or a text column) the teacher labels: extra rows, KD term only."
    )
    augment: int = Field(0, ge=0, description="N variants of each labelled query (mask, drop, swap, n-gram), KD only.")
    splice: int = Field(
        0,
        ge=0,
        description="N spliced queries per labelled query (the first words of one joined to the last words of "
        "another), KD only.",
    )
    intent_names: bool = Field(
        False,
        description="Each intent's name read as words (card_declined: 'card declined') as one more labelled training "
        "query; names that read as no words (LABEL_3) are skipped.",
    )
    feature_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the sentence-geometry loss: 1 - cosine of the student's pooled vector, through a "
        "learned projection, and the teacher's (0: off).",
    )
    contrastive_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the supervised contrastive loss on the pooled vectors of labelled queries, with "
        "batches of same-label pairs (0: off).",
    )
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of matching each student layer's token vectors to a teacher layer's (MSE), for a teacher "
        "and a student of one tokenizer and width (0: off).",
    )
    layer_map: list[int] | None = Field(
        None,
        description="With hidden_weight: the teacher layer (0-based) each student layer matches; default the layers "
        "a student cut from the teacher kept, else spread evenly.",
    )
    transfer_weight: float = Field(
        1.0, ge=0, description="Weight of the KD term of transfer-set and augmented rows (labelled rows: 1)."
    )
    aliases: dict[str, str] = Field(default_factory=dict, description="Model names: name -> checkpoint.")
    trust_remote_code: bool = Field(False, description="Run model code from the checkpoint (off unless set).")

    # Training
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the cross-entropy on labels; 1 = plain fine-tuning.")
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of the distillation loss.")
    kd_loss: Literal["kl", "reverse_kl", "symmetric_kl", "mse"] = Field(
        "kl",
        description="The distillation term: kl (T² KL(teacher ‖ student), Hinton et al.), reverse_kl, symmetric_kl, "
        "or mse (on the centred logits).",
    )
    epochs: PositiveInt = Field(3, description="Training epochs.")
    keep_best_epoch: bool = Field(
        True, description="Keep the epoch with the best expected accuracy with the rule on validation, not the last."
    )
    patience: NonNegativeInt | None = Field(
        None,
        description="Epochs without a better one before training stops (0: never); default 5 static, 2 otherwise.",
    )
    max_steps: PositiveInt | None = Field(
        None, description="Stop after this many optimizer steps, before the epochs end (TrainingArguments.max_steps)."
    )
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    batch_size: PositiveInt = Field(48, description="Training batch size per process.")
    eval_batch_size: PositiveInt = Field(64, description="Batch size of the validation passes.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    layer_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Layer-wise learning-rate decay: each encoder layer learns at this times the rate of the one "
        "above it, the head at learning_rate (1: every layer alike).",
    )
    warmup: float = Field(0.0, ge=0, lt=1, description="Fraction of steps for learning-rate warmup.")
    gradient_accumulation_steps: PositiveInt = Field(1, description="Accumulate gradients over N batches.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Numeric precision: auto (bf16 on a GPU that has it, fp16 on other CUDA GPUs, fp32 on CPU)."
    )
    seed: int = Field(42, ge=0, lt=2**32, description="Random seed (data split, head initialisation, shuffling).")
    group_by_length: bool = Field(True, description="Batch queries of similar length: far less padding.")
    report_to: str | list[str] = Field(
        "none",
        validate_default=True,
        description="Experiment trackers, as TrainingArguments.report_to: none, all, or names (tensorboard,mlflow).",
    )

    # Out of scope
    oos_rule: Literal["auto", "threshold", "none"] = Field(
        "auto",
        description="Out-of-scope rule chosen on validation: auto (when the data has the oos label), threshold, none.",
    )
    oos_score: Literal["auto", "max_softmax", "energy", "mahalanobis", "energy+mahalanobis", "knn"] = Field(
        "auto",
        description="Score the out-of-scope rule thresholds: auto (of the first four, the best validation AUROC "
        "where validation has out-of-scope queries, else energy+mahalanobis), or one of them.",
    )
    oos_share: float = Field(
        0.18,
        gt=0,
        lt=1,
        description="Expected share of out-of-scope queries in deployment: weighs the rule's choice on validation.",
    )
    oos_reject: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Data with no out-of-scope label: the fallback turns away at most this share of in-scope "
        "queries like validation's, answering oos_label (0: no fallback).",
    )

    # Outputs
    runs_dir: Path = Field(Path("runs"), description="Folder of runs (run names resolve there).")
    name: str | None = Field(None, description="Run name under the runs folder.")
    output: Path | None = Field(None, description="Output folder.")
    cache_dir: Path | None = Field(None, description="Cache of prepared datasets and teacher logits.")

    @field_validator("teacher")
    @classmethod
    def _one_or_several(cls, value: list[str] | str | None) -> list[str] | str | None:
        """One teacher is a name; several, a list (an ensemble); none, None."""
        if isinstance(value, list):
            return None if not value else value[0] if len(value) == 1 else value
        return value

    @property
    def teachers(self) -> list[str]:
        """Every teacher: one, several (an ensemble) or none."""
        return [] if self.teacher is None else [self.teacher] if isinstance(self.teacher, str) else self.teacher

    @property
    def lead_teacher(self) -> str | None:
        """The first teacher: its label order is the run's, and the others' must be the same."""
        return self.teachers[0] if self.teachers else None

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, value: str | list[str]) -> list[str]:
        """``"tensorboard,mlflow"`` (as a flag gives it) or a YAML list; ``none`` is the empty list."""
        names = value.split(",") if isinstance(value, str) else value
        names = [n.strip() for n in names if n.strip()]
        return [] if names == ["none"] else names

    def effective_patience(self, static: bool) -> int:
        """The patience a run stops with: the config's, else the default of its kind of student."""
        if self.patience is not None:
            return self.patience
        return STATIC_PATIENCE if static else TRANSFORMER_PATIENCE

    def cache_root(self) -> Path:
        """Where prepared datasets and teacher logits are cached."""
        if self.cache_dir is not None:
            return self.cache_dir
        if os.environ.get("DISTILL_CACHE"):
            return Path(os.environ["DISTILL_CACHE"])
        xdg = os.environ.get("XDG_CACHE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".cache") / "distill"

    def training_settings(self) -> dict[str, Any]:
        """Every setting that decides what is trained (not ``PLACEMENT``), as JSON values."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in PLACEMENT}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class StepOptions(BaseModel):
    """A command's options that are not settings of what is trained (how to export, measure, publish): its
    section of the config file may hold them beside ``Config`` keys; its flags override them."""

    model_config = ConfigDict(extra="forbid")


class ExportOptions(StepOptions):
    """``distill export``'s options, which its ``export:`` section may hold too (``distill run`` reads them)."""

    quantize: Literal["int8", "none"] = Field(
        "none", description="int8: dynamic int8 weights; none: fp32 (distill run: int8)."
    )
    trim_vocab: bool = Field(False, description="Keep only the tokens of the training split and single characters.")
    trim_keep: Path | None = Field(
        None, description="With trim_vocab, also keep the tokens of these texts (.txt one a line, or a text column)."
    )
    max_accuracy_drop: float = Field(
        DEFAULT_MAX_ACCURACY_DROP, ge=0, description="Gate: validation points int8 or trimming may lose (each)."
    )


class EvaluateOptions(StepOptions):
    """``distill evaluate``'s options, which its ``evaluate:`` section may hold too (``distill run`` reads them)."""

    latency_runs: PositiveInt = Field(100, description="Timed single-query runs.")
    batch_size: PositiveInt = Field(32, description="Batch size for throughput.")
    threads: PositiveInt | None = Field(None, description="torch threads for every model.")
    min_accuracy: float | None = Field(None, description="Gate: fail below this accuracy.")
    max_latency_ms: float | None = Field(None, description="Gate: median one-query ms, fail above this.")
    max_accuracy_drop: float | None = Field(None, description="Gate: points below the first model (the teacher).")
    metric: list[str] = Field(
        default_factory=list, description="Extra `evaluate` metrics (names or paths; needs trust_remote_code)."
    )


class PushOptions(StepOptions):
    """``distill push``'s options, which its ``push:`` section may hold too (``distill run --push`` wins)."""

    repo_id: str | None = Field(
        None, description="OWNER/NAME on the Hub (distill push needs one; distill run pushes only with one)."
    )
    private: bool = Field(False, description="Create the repository as private.")
    commit_message: str | None = Field(None, description="Commit message.")


STEP_OPTIONS: dict[str, type[StepOptions]] = {"export": ExportOptions, "evaluate": EvaluateOptions, "push": PushOptions}


def load_config(
    path: Path | None = None, command: str | None = None, overrides: dict[str, Any] | None = None
) -> Config:
    """Merge defaults, the YAML file and flag overrides (``None`` values are 'not given') into a Config."""
    return load_step(path, command, overrides)[0]


def load_step(
    path: Path | None,
    command: str | None,
    overrides: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> tuple[Config, StepOptions | None]:
    """``load_config``, and for a command with options of its own (``STEP_OPTIONS``: ``export``, ``evaluate``,
    ``push``) those options too, with the same precedence: ``defaults`` (the caller's) < the command's
    section of the file < ``overrides`` (the flags). The file's top level holds ``Config`` keys only."""
    command = SETTINGS_OF.get(command, command)
    kind = STEP_OPTIONS.get(command or "")
    own = kind.model_fields if kind is not None else {}
    merged: dict[str, Any] = dict(COMMAND_DEFAULTS.get(command or "", {}))
    step: dict[str, Any] = dict(defaults or {})
    where = "flags"
    if path is not None:
        data = read_yaml(path)
        where = f"config {path}"
        sections = {k: data.pop(k) for k in COMMANDS if k in data}
        merged.update(data)
        section = sections.get(command) if command else None
        if section is not None:
            if not isinstance(section, dict):
                raise UsageError(f"{where}: section '{command}' must be a mapping of keys to values")
            step.update({k: v for k, v in section.items() if k in own})
            merged.update({k: v for k, v in section.items() if k not in own})
    given = {k: v for k, v in (overrides or {}).items() if v is not None and v != [] and v != ()}
    step.update({k: v for k, v in given.items() if k in own})
    merged.update({k: v for k, v in given.items() if k not in own})
    try:
        cfg = Config(**merged)
    except ValidationError as err:
        raise UsageError(f"{where}: {describe_validation_error(err, {**Config.model_fields, **own})}") from None
    if kind is None:
        return cfg, None
    try:
        return cfg, kind(**step)
    except ValidationError as err:
        raise UsageError(f"{where}: {describe_validation_error(err, own, f'{command}.')}") from None


def describe_validation_error(err: ValidationError, fields=None, prefix: str = "") -> str:
    """One line naming each bad key (of ``fields``, the Config's by default) and what it allows."""
    parts = []
    for e in err.errors():
        key = prefix + (".".join(str(p) for p in e["loc"]) or "config")
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][0]), fields or Config.model_fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            parts.append(f"unknown key '{key}'{hint}")
        else:
            parts.append(f"'{key}': {e['msg'].lower()} (got {e.get('input')!r})")
    return "; ".join(parts)
