"""`distill evaluate`: parse, call ``commands.evaluate``, render, apply the quality gates."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from distill_cli.config import EvaluateOptions, load_step
from distill_cli.errors import UsageError
from distill_cli.extras import require
from distill_cli.options import EVALUATE, EVALUATE_OPTIONS, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import console, emit_json, info, quiet_libraries


@config_flags(*EVALUATE_OPTIONS, model=EvaluateOptions)
@config_flags(*EVALUATE)
def evaluate(
    models: Annotated[
        list[str],
        typer.Argument(autocompletion=complete_model, help="Run names, folders or Hub ids; the first is the reference"),
    ],
    config: ConfigOpt = None,
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    json_out: JsonOpt = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the JSON here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Accuracy-vs-latency PNG (needs matplotlib).")] = None,
    report: Annotated[
        Optional[Path], typer.Option("--report", help="One self-contained HTML page of it all (needs matplotlib).")
    ] = None,
    **overrides,
) -> None:
    """Compare models side by side: accuracy, latency, throughput and size."""
    cfg, o = load_step(config, "evaluate", overrides, {})  # the Config's keys and evaluate's own options
    from distill_cli.commands import evaluate as command
    from distill_cli.commands import evaluate_render

    check_writable(output, plot, report)
    quiet_libraries()
    settings = dict(split=split, threads=o.threads, latency_runs=o.latency_runs, batch_size=o.batch_size)
    results = command.evaluate_models(cfg, models, **settings, extra_metrics=o.metric)
    evaluate_render.render(results)
    write_outputs(results, output, plot, report)
    failures = command.check_gates(results, o.min_accuracy, o.max_latency_ms, o.max_accuracy_drop)
    if json_out:
        emit_json(results.json_dict())
    if failures:
        for line in failures:
            console.print(f"[red]gate failed:[/] {escape(line)}", soft_wrap=True)
        raise typer.Exit(1)


def check_writable(output: Path | None, plot: Path | None, report: Path | None) -> None:
    """A path that cannot be written fails now, not after the evaluation; a figure needs matplotlib."""
    if plot is not None or report is not None:
        require("matplotlib")
    for path in (output, plot, report):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            problem = "it is a folder" if path.is_dir() else "its folder does not exist"
            raise UsageError(f"cannot write {path}: {problem}")


def write_outputs(results, output: Path | None, plot: Path | None, report: Path | None) -> None:
    """The JSON copy (``--output``), the PNG (``--plot``) and the HTML page (``--report``) that were asked for."""
    from distill_cli.commands import evaluate as command
    from distill_cli.commands import evaluate_report
    from distill_cli.machine import machine

    if output is not None:
        command.write_json(results, output)
    if plot is not None:
        evaluate_report.plot(results, plot)
        info(f"plot written to {plot}")
    if report is not None:
        evaluate_report.write_report(results, report, machine())
        info(f"report written to {report}")
