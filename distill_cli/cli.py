"""The ``distill`` command line: parse, call the core, render. Nothing heavy is imported at module level,
so ``distill --help`` stays fast; torch and transformers load inside the commands."""

import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

try:  # typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import UsageError as ClickUsageError

from rich.markup import escape

from distill_cli import __version__
from distill_cli.config import load_config
from distill_cli.errors import DistillError, UsageError
from distill_cli.ui import console, emit_json, info

app = typer.Typer(
    name="distill",
    help="Distill intent classifiers: fine-tune a teacher, distill a small fast student, measure it, publish it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# Flags that override a config key, declared once: (config key) -> (type, flag names, help).
FLAGS: dict[str, tuple[Any, tuple[str, ...], str]] = {
    "dataset": (str, ("--dataset", "-d"), "Prepared folder, data file(s), built-in name or Hub name[:config]."),
    "text_column": (str, ("--text-column",), "Text column (detected when unset)."),
    "label_column": (str, ("--label-column",), "Label column (detected when unset)."),
    "oos_label": (str, ("--oos-label",), "Name of the out-of-scope label."),
    "max_length": (int, ("--max-length",), "Truncate queries to this many tokens."),
    "validation_size": (float, ("--validation-size",), "Fraction of train held out when there is no validation."),
    "student": (str, ("--student", "-s"), "Student checkpoint: folder, run name, alias or Hub id."),
    "student_layers": (int, ("--student-layers",), "Keep N of the student's layers, spread evenly."),
    "teacher": (str, ("--teacher", "-t"), "Teacher: folder, run name, alias or Hub id."),
    "teacher_mode": (str, ("--teacher-mode",), "cached (teacher logits computed once) or online (every step)."),
    "alpha": (float, ("--alpha",), "Weight of the cross-entropy on labels; 1 = plain fine-tuning."),
    "temperature": (float, ("--temperature", "-T"), "Softmax temperature of the distillation loss."),
    "epochs": (int, ("--epochs",), "Training epochs."),
    "learning_rate": (float, ("--learning-rate", "--lr"), "Peak learning rate."),
    "batch_size": (int, ("--batch-size",), "Training batch size per process."),
    "weight_decay": (float, ("--weight-decay",), "AdamW weight decay."),
    "warmup": (float, ("--warmup",), "Fraction of steps for learning-rate warmup."),
    "gradient_accumulation_steps": (int, ("--gradient-accumulation-steps",), "Accumulate gradients over N batches."),
    "seed": (int, ("--seed",), "Random seed (data split, head initialisation, shuffling)."),
    "group_by_length": (bool, ("--group-by-length/--no-group-by-length",), "Batch queries of similar length."),
    "runs_dir": (Path, ("--runs-dir",), "Folder of runs (run names resolve there)."),
    "name": (str, ("--name",), "Run name under the runs folder."),
    "cache_dir": (Path, ("--cache-dir",), "Cache of prepared datasets and teacher logits."),
}
DATA = (
    "dataset",
    "text_column",
    "label_column",
    "oos_label",
    "max_length",
    "validation_size",
    "seed",
    "cache_dir",
    "runs_dir",
)
TRAIN = DATA + (
    "student",
    "student_layers",
    "alpha",
    "epochs",
    "learning_rate",
    "batch_size",
    "weight_decay",
    "warmup",
    "gradient_accumulation_steps",
    "group_by_length",
    "name",
)
DISTILL = TRAIN + ("teacher", "teacher_mode", "temperature")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; flags override it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout; the rest goes to stderr.")]


def config_flags(*keys: str):
    """Give a command the flags of these config keys; their values arrive in ``**overrides``."""

    def decorate(fn):
        signature = inspect.signature(fn)
        params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        for key in keys:
            kind, names, help_text = FLAGS[key]
            annotation = Annotated[Optional[kind], typer.Option(*names, help=help_text, show_default=False)]
            params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
            fn.__annotations__[key] = annotation
        fn.__signature__ = signature.replace(parameters=params)
        return fn

    return decorate


def quiet_libraries() -> None:
    """Our own progress replaces tqdm bars and library chatter."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also DISTILL_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options; --debug may also follow any command."""


@app.command()
@config_flags(*DATA, "student", "teacher")
def prepare(
    config: ConfigOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to write (default: cache).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different dataset in --output.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Read a dataset, name its labels, split and tokenize it for the student, and save it."""
    cfg = load_config(config, "prepare", overrides)
    quiet_libraries()
    from distill_cli import data

    result = data.prepare_command(cfg, output or cfg.output, overwrite)
    m = result.manifest
    verb = "reused" if result.reused else "prepared"
    info(
        f"{verb} {result.path}: "
        + ", ".join(f"{k} {v:,}" for k, v in m["splits"].items())
        + f"; {len(m['labels'])} labels"
    )
    if json_out:
        emit_json(
            {
                "output": str(result.path),
                "splits": {s: m["splits"].get(s, 0) for s in ("train", "validation", "test")},
                "num_labels": len(m["labels"]),
                "labels": m["labels"],
                "reused": result.reused,
            }
        )


def _train(
    command: str,
    config: Optional[Path],
    output: Optional[Path],
    resume: bool,
    overwrite: bool,
    json_out: bool,
    overrides: dict,
) -> None:
    cfg = load_config(config, command, {**overrides, "output": output})
    quiet_libraries()
    from distill_cli import trainer

    summary = trainer.train(cfg, command, resume=resume, overwrite=overwrite, argv=_ARGV)
    if summary["world_size"] > 1 and not _is_rank_zero():
        return
    render_run(summary)
    if json_out:
        emit_json({k: summary[k] for k in ("output", "train_s", "teacher_cache_s", "epochs", "metrics")})


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def render_run(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['command']} → {summary['output']}", title_justify="left")
    for col in ("epoch", "loss", "accuracy", "macro-F1", "in-scope", "oos recall"):
        table.add_column(col, justify="right")
    for e in summary["epochs"]:
        cells = [e.get(k) for k in ("epoch", "loss", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall")]
        table.add_row(*("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells))
    console.print(table)
    console.print(f"train {summary['train_s']:.1f}s, teacher logits {summary['teacher_cache_s']:.1f}s")


ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")]
RunOutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder (instead of --name).")]


def _training_command(command: str, keys: tuple[str, ...], doc: str) -> None:
    """Register ``finetune`` or ``distill``: the same options, the same core call."""

    @config_flags(*keys)
    def run(
        config: ConfigOpt = None,
        output: RunOutputOpt = None,
        resume: ResumeOpt = False,
        overwrite: OverwriteOpt = False,
        json_out: JsonOpt = False,
        **overrides,
    ) -> None:
        _train(command, config, output, resume, overwrite, json_out, overrides)

    run.__doc__ = doc
    app.command(command)(run)


_training_command(
    "finetune", TRAIN, "Fine-tune a model on the labels alone (alpha 1): a teacher, or a student baseline."
)
_training_command("distill", DISTILL, "Train a student to match a teacher's predictions and the labels.")


@app.command()
@config_flags("dataset", "oos_label", "max_length", "runs_dir", "cache_dir", "seed", "validation_size")
def evaluate(
    models: Annotated[list[str], typer.Argument(help="Run names, folders or Hub ids; the first is the reference.")],
    config: ConfigOpt = None,
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    json_out: JsonOpt = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the JSON here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Accuracy-vs-latency PNG (needs matplotlib).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch threads for every model.")] = None,
    latency_runs: Annotated[int, typer.Option("--latency-runs", min=1, help="Timed single-query runs.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size for throughput.")] = 32,
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", help="Extra `evaluate` metric (name or path).")
    ] = None,
    min_accuracy: Annotated[Optional[float], typer.Option("--min-accuracy", help="Gate: fail below this.")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option("--max-latency-ms", help="Gate: fail above this.")] = None,
    max_accuracy_drop: Annotated[
        Optional[float], typer.Option("--max-accuracy-drop", help="Gate: points below the first model.")
    ] = None,
    **overrides,
) -> None:
    """Compare models side by side: accuracy, latency, throughput and size."""
    cfg = load_config(config, "evaluate", overrides)
    if plot is not None:
        from distill_cli.benchmark import require_matplotlib

        require_matplotlib()
    quiet_libraries()
    from distill_cli import benchmark

    report = benchmark.evaluate_models(
        cfg,
        models,
        split=split,
        threads=threads,
        latency_runs=latency_runs,
        batch_size=batch_size,
        extra_metrics=metric or [],
    )
    benchmark.render(report)
    if output is not None:
        benchmark.write_json(report, output)
    if plot is not None:
        benchmark.plot(report, plot)
        info(f"plot written to {plot}")
    failures = benchmark.check_gates(report, min_accuracy, max_latency_ms, max_accuracy_drop)
    if json_out:
        emit_json(report)
    if failures:
        for line in failures:
            console.print(f"[red]gate failed:[/] {escape(line)}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def push(
    model: Annotated[str, typer.Argument(help="Run name or run folder.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="OWNER/NAME on the Hub.")],
    config: ConfigOpt = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message", help="Commit message.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the files and the card; upload nothing.")] = False,
    json_out: JsonOpt = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help=FLAGS["runs_dir"][2])] = None,
) -> None:
    """Publish a run to the Hugging Face Hub with a model card. The token comes from HF_TOKEN or `hf auth login`."""
    cfg = load_config(config, "push", {"runs_dir": runs_dir})
    from distill_cli import hub

    result = hub.push(cfg, model, repo_id, private=private, commit_message=commit_message, dry_run=dry_run)
    if dry_run:
        from rich.table import Table

        table = Table(title=f"would upload to {repo_id}", title_justify="left")
        table.add_column("path")
        table.add_column("bytes", justify="right")
        for f in result["files"]:
            table.add_row(f["path"], f"{f['bytes']:,}")
        console.print(table)
        console.print(result["card"], markup=False, soft_wrap=True)
    else:
        info(f"pushed {len(result['files'])} files to {result['url']}")
    if json_out:
        emit_json(result)


@config_app.command("show")
@config_flags(*DISTILL)
def config_show(
    config: ConfigOpt = None,
    command: Annotated[Optional[str], typer.Option("--command", help="Apply this command's config section.")] = None,
    **overrides,
) -> None:
    """Print the effective configuration (defaults < file < file section < flags) as YAML."""
    if command is not None and command not in ("prepare", "finetune", "distill", "evaluate", "push"):
        raise UsageError(f"--command {command}: expected prepare, finetune, distill, evaluate or push")
    typer.echo(load_config(config, command, overrides).to_yaml(), nl=False)


_ARGV: list[str] = []  # the command line as typed, for the hint that resumes an interrupted run


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per error on stderr, exit 2 for bad usage, 1 for failures."""
    global _ARGV
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DISTILL_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    _ARGV = args
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="distill", standalone_mode=False)
    except ClickUsageError as err:
        message = err.format_message()
        where = f" ({err.ctx.command_path})" if err.ctx is not None else ""
        console.print(f"[red]error:[/]{escape(where)} {escape(message)}".replace("\n", " "), soft_wrap=True)
        code = 2
    except DistillError as err:
        if debug:
            traceback.print_exc()
        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        code = err.exit_code
    except (KeyboardInterrupt, typer.Abort):
        console.print("[red]interrupted[/]")
        code = 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        console.print(
            f"[red]error:[/] {type(err).__name__}: {escape(str(err))} (run with --debug for the traceback)",
            soft_wrap=True,
        )
        code = 1
    sys.exit(code or 0)
