"""The ``distill`` command line: registers the commands, parses, calls the core, renders, and maps errors to
exit codes. Nothing heavy is imported at module level, so ``distill --help`` stays fast; torch and
transformers load inside the commands (``distill_cli.commands``)."""

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

try:  # typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import UsageError as ClickUsageError

from rich.markup import escape

from distill_cli import __version__
from distill_cli.config import COMMANDS, load_config
from distill_cli.errors import DistillError, Interrupted, UsageError
from distill_cli.options import DISTILL, EVALUATE, PREDICT, PREPARE, PUSH, TRAIN, ConfigOpt, JsonOpt, config_flags
from distill_cli.ui import console, emit_json, info, quiet_libraries

app = typer.Typer(
    name="distill",
    help="Distill intent classifiers: fine-tune a teacher, distill a small fast student, measure it, publish it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")


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
@config_flags(*PREPARE)
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
    from distill_cli.commands import prepare as command

    result = command.prepare_command(cfg, output or cfg.output, overwrite)
    m = result.manifest
    splits = ", ".join(f"{k} {v:,}" for k, v in m["splits"].items())
    info(f"{'reused' if result.reused else 'prepared'} {result.path}: {splits}; {len(m['labels'])} labels")
    if json_out:
        emit_json(command.summary(result))


ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")]
RunOutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder (instead of --name).")]


def _training_command(name: str, keys: tuple[str, ...], doc: str) -> None:
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
        cfg = load_config(config, name, {**overrides, "output": output})
        quiet_libraries()
        from distill_cli.commands import train

        record = train.train(cfg, name, resume=resume, overwrite=overwrite)
        if record.world_size > 1 and os.environ.get("RANK", "0") != "0":
            return  # rank 0 alone prints
        train.render(record)
        if json_out:
            emit_json(train.summary(record))

    run.__doc__ = doc
    app.command(name)(run)


_training_command(
    "finetune", TRAIN, "Fine-tune a model on the labels alone (alpha 1): a teacher, or a student baseline."
)
_training_command("distill", DISTILL, "Train a student to match a teacher's predictions and the labels.")


@app.command()
@config_flags(*EVALUATE)
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
    from distill_cli.commands import evaluate as command

    if plot is not None:
        command.require_matplotlib()
    quiet_libraries()
    settings = dict(split=split, threads=threads, latency_runs=latency_runs, batch_size=batch_size)
    report = command.evaluate_models(cfg, models, **settings, extra_metrics=metric or [])
    command.render(report)
    if output is not None:
        command.write_json(report, output)
    if plot is not None:
        command.plot(report, plot)
        info(f"plot written to {plot}")
    failures = command.check_gates(report, min_accuracy, max_latency_ms, max_accuracy_drop)
    if json_out:
        emit_json(report)
    if failures:
        for line in failures:
            console.print(f"[red]gate failed:[/] {escape(line)}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@config_flags(*PREDICT)
def predict(
    model: Annotated[str, typer.Argument(help="Run name, folder, alias or Hub id.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts; else --file, else stdin (one a line).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Texts, one per line ('-': stdin).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Show the N most likely intents.")] = 1,
    config: ConfigOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a text on stdout (JSON lines).")] = False,
    **overrides,
) -> None:
    """Classify texts: the intent, its probability and the out-of-scope decision."""
    cfg = load_config(config, "predict", overrides)
    from distill_cli.commands import predict as command

    lines = command.read_texts(texts or [], file)  # bad input is refused before a model is loaded
    quiet_libraries()
    command.render(command.Predictor.load(cfg, model)(lines, top_k), json_lines=json_out)


@app.command()
@config_flags(*PUSH)
def push(
    model: Annotated[str, typer.Argument(help="Run name or run folder.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="OWNER/NAME on the Hub.")],
    config: ConfigOpt = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message", help="Commit message.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the files and the card; upload nothing.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Publish a run to the Hugging Face Hub with a model card. The token comes from HF_TOKEN or `hf auth login`."""
    cfg = load_config(config, "push", overrides)
    from distill_cli.commands import publish

    result = publish.push(cfg, model, repo_id, private=private, commit_message=commit_message, dry_run=dry_run)
    if dry_run:
        publish.render_dry_run(result)
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
    if command is not None and command not in COMMANDS:
        raise UsageError(f"--command {command}: expected {', '.join(COMMANDS[:-1])} or {COMMANDS[-1]}")
    typer.echo(load_config(config, command, overrides).to_yaml(), nl=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per error on stderr, exit 2 for bad usage, 1 for failures."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DISTILL_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
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
        message = f"{err}; {err.resume_hint(args)}" if isinstance(err, Interrupted) else str(err)
        console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
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
