"""Command-line flags derived from the ``Config`` fields: a flag's type and help text are the field's own,
so each setting is described once. The groups below say which command takes which settings."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel

from distill_cli.config import Config

# Extra names beside the long flag ``--key-name`` that every setting gets.
SHORT_NAMES = {
    "dataset": ("-d",),
    "student": ("-s",),
    "teacher": ("-t",),
    "temperature": ("-T",),
    "learning_rate": ("--lr",),
}

DATA = (
    "dataset",
    "text_column",
    "label_column",
    "oos_label",
    "max_length",
    "validation_size",
    "min_examples",
    "drop_duplicates",
    "drop_leaks",
    "strict",
    "seed",
    "cache_dir",
    "runs_dir",
)
PREPARE = DATA + ("student", "teacher")
TRAIN = DATA + (
    "precision",
    "student",
    "student_layers",
    "alpha",
    "epochs",
    "max_steps",
    "keep_best_epoch",
    "patience",
    "learning_rate",
    "batch_size",
    "weight_decay",
    "warmup",
    "gradient_accumulation_steps",
    "group_by_length",
    "report_to",
    "name",
    "pooling",
    "head_init",
    "contrastive_weight",
    "intent_names",
    "layer_decay",
    "oos_rule",
    "oos_score",
    "oos_share",
    "oos_reject",
)
DISTILL = TRAIN + (
    "teacher",
    "teacher_labels",
    "teacher_ensemble",
    "teacher_mode",
    "temperature",
    "kd_loss",
    "static_dims",
    "transfer_set",
    "augment",
    "splice",
    "transfer_weight",
    "feature_weight",
    "hidden_weight",
    "layer_map",
)
EVALUATE = (
    "dataset",
    "oos_label",
    "max_length",
    "runs_dir",
    "cache_dir",
    "seed",
    "precision",
    "validation_size",
    "min_examples",
    "drop_duplicates",
    "drop_leaks",
    "strict",
    "trust_remote_code",
)
EXPORT = ("dataset", "runs_dir", "cache_dir", "max_length", "seed", "validation_size")
PREDICT = ("runs_dir", "max_length", "oos_label")
# `distill run`: the flags of the common settings (its --teacher and --student are its own); every other
# setting is a key of its config file.
RUN = DATA + ("epochs", "student_layers", "precision", "name")
PUSH = ("runs_dir",)
# The flags of export's, evaluate's and push's own options (config.ExportOptions, EvaluateOptions, PushOptions),
# which their config sections may hold too.
EXPORT_OPTIONS = ("quantize", "trim_vocab", "trim_keep", "max_accuracy_drop")
# Each command and the config keys it takes as flags.
FLAGS_OF = {"prepare": PREPARE, "finetune": TRAIN, "distill": DISTILL, "search": DISTILL, "evaluate": EVALUATE,
            "export": EXPORT, "predict": PREDICT, "push": PUSH, "run": RUN}  # fmt: skip
PUSH_OPTIONS = ("repo_id", "private", "commit_message")
EVALUATE_OPTIONS = ("threads", "latency_runs", "batch_size", "metric", "min_accuracy", "max_latency_ms",
                    "max_accuracy_drop")  # fmt: skip

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags override it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout; the rest goes to stderr.")]


def flag_type(key: str, model: type[BaseModel] = Config) -> Any:
    """The Python type typer parses a setting as (validation proper is the Config's job). A ``Literal`` stays
    one: typer lists its choices in ``--help`` and refuses any other value (exit 2, naming them)."""
    annotation = model.model_fields[key].annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def flag_names(key: str, model: type[BaseModel] = Config) -> tuple[str, ...]:
    long = "--" + key.replace("_", "-")
    if flag_type(key, model) is bool:
        return (f"{long}/--no-{long[2:]}",)
    return (long, *SHORT_NAMES.get(key, ()))


def complete_model(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a model argument: the runs under the runs folder (``--runs-dir``, else ``runs``)
    and the built-in aliases. Cheap: a folder listing, no import of torch."""
    runs = Path(ctx.params.get("runs_dir") or "runs")
    names = sorted(p.name for p in runs.iterdir() if (p / "config.json").is_file()) if runs.is_dir() else []
    return [n for n in (*names, "minilm-l6", "mpnet-base") if n.startswith(incomplete)]


MODEL_KEYS = ("student", "teacher")


def flag_option(key: str, model: type[BaseModel] = Config) -> Any:
    """The typer annotation of the flag that overrides config key ``key`` (of the ``Config``, or of a
    command's own options, ``config.STEP_OPTIONS``)."""
    field = model.model_fields[key]
    help_text = field.description
    default = field.get_default(call_default_factory=True)
    if model is not Config and default not in (None, False, []):
        help_text += f" [default: {default}]"
    complete = {"autocompletion": complete_model} if key in MODEL_KEYS else {}
    option = typer.Option(*flag_names(key, model), help=help_text, show_default=False, **complete)
    return Annotated[Optional[flag_type(key, model)], option]


def config_flags(*keys: str, model: type[BaseModel] = Config):
    """Give a command the flags of these config keys (of ``model``: the ``Config``, or a command's own
    options); their values arrive in ``**overrides`` (``None`` when not given, so that the config file's
    value stands)."""

    def decorate(fn):
        signature = inspect.signature(fn)
        params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        for key in keys:
            annotation = flag_option(key, model)
            params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
            fn.__annotations__[key] = annotation
        fn.__signature__ = signature.replace(parameters=params)
        return fn

    return decorate
