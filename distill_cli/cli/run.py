"""`distill run`: parse, call ``commands.run``, render."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from distill_cli.options import RUN, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, quiet_libraries

Step = Literal["prepare", "finetune", "distill", "export", "evaluate"]


def ModelOpt(flag: str, short: str, help: str):  # noqa: N802 - an annotation, named as typer's are
    """A model flag of ``run`` (its meaning is run's own, not the Config field's), completed with run names."""
    option = typer.Option(flag, short, autocompletion=complete_model, show_default=False, help=help)
    return Annotated[Optional[str], option]


@config_flags(*RUN)
def run(
    config: ConfigOpt = None,
    teacher: ModelOpt(
        "--teacher", "-t", "What the teacher is fine-tuned from (default: mpnet-base where installed, else "
        "minilm-l6), or a finished run to distill from as it is."
    ) = None,
    student: ModelOpt(
        "--student", "-s", "The student's checkpoint, or 'teacher' for the teacher's own layers (default: "
        "minilm-l6 for mpnet-base, else 'teacher' with 3 layers)."
    ) = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="The run's folder (default: <runs_dir>/<name>).")
    ] = None,
    push: Annotated[
        Optional[str], typer.Option("--push", help="Publish the student to this Hub repository (OWNER/NAME).")
    ] = None,
    until: Annotated[Optional[Step], typer.Option("--until", help="Stop after this step.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo steps whose settings changed (and the steps after them).")
    ] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """From a dataset to a teacher, a student, its int8 ONNX export, a report, and (--push) the Hub.

    Steps: prepare, finetune, distill, export, evaluate, push. Run again, it reuses every finished step
    whose settings did not change, and resumes an interrupted one."""
    from distill_cli.commands import run as command
    from distill_cli.commands.run_plan import make_plan

    plan = make_plan(config, {**overrides, "teacher": teacher, "student": student}, output, push)
    quiet_libraries()
    summary = command.run(plan, overwrite=overwrite, until=until)
    render(summary, plan.folder)
    if json_out:
        emit_json(summary.model_dump(mode="json"))


def render(summary, folder: Path) -> None:
    """The steps and the headline figures, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.ui import console

    steps = Table(title=f"distill run → {folder}", title_justify="left")
    for col in ("step", "status", "seconds", "output"):
        steps.add_column(col, justify="right" if col == "seconds" else "left")
    for name, step in summary.steps.items():
        steps.add_row(name, step.status, f"{step.seconds:.1f}", step.output or "")
    console.print(steps)
    if not summary.metrics:
        return
    figures = Table(title=f"on {summary.split}", title_justify="left")
    for col in ("model", "accuracy", "with the rule", "latency ms", "size MB"):
        figures.add_column(col, justify="left" if col == "model" else "right")
    for role, m in summary.metrics.items():
        rule = m.get("with_rule", {}).get("accuracy")
        cells = (m.get("accuracy"), rule, m.get("latency_ms_median"), m.get("size_mb"))
        figures.add_row(role, *("—" if v is None else f"{v:.4g}" for v in cells))
    console.print(figures)
    if summary.report:
        console.print(f"report: {summary.report}")
