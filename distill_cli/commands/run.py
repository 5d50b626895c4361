"""``distill run``: one command from a dataset to what a team ships, with the tool's defaults.

prepare → finetune (the teacher) → distill (the student) → export (int8 ONNX, gated as ``export`` is) →
evaluate (teacher, student and export side by side, with the HTML report) → push (with ``--push``). One
folder holds every step's output and ``summary.json`` (``records.RunSummary``). Each step records a digest
of its settings and of the steps it reads from: the same command run again reuses every step whose digest
is unchanged, and an interrupted run resumes at the step it stopped in (a training step from its last
checkpoint). A step whose output is there but was made otherwise is redone only with ``--overwrite``.

Each step is the command of the same name, called with the config that command would read: the file's top
level, then its section (``finetune:``, ``distill:``, ``export:``, ``evaluate:``, ``push:``), then the flags.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_cli.commands.run_plan import THE_TEACHER, RunPlan, fallback_advice
from distill_cli.config import Config
from distill_cli.data.sources import sha
from distill_cli.errors import DistillError, UsageError
from distill_cli.records import EvalReport, ModelResult, RunSummary, StepRecord
from distill_cli.ui import info

HEADLINE = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "latency_ms_median", "throughput_qps",
            "size_mb", "parameters", "agreement")  # fmt: skip
WITH_RULE = ("accuracy", "in_scope_accuracy", "oos_recall", "in_scope_rejected")


def check(plan: RunPlan) -> None:
    """What can be refused before any compute (the dataset was, as the plan was made): the models (their
    configs load), each training step's settings, the folder, the extras, the Hub repository."""
    from distill_cli.commands.publish import check_repo_id
    from distill_cli.extras import require
    from distill_cli.modeling import load_model_config, resolve_model
    from distill_cli.training.plan import make_plan as training_plan
    from distill_cli.training.plan import preflight

    check_folder(plan.folder)
    teacher = plan.teacher_ref
    load_model_config(teacher, plan.finetune)
    if not plan.teacher_trained:
        preflight(training_plan(plan.finetune, "finetune"), teacher)
    student = teacher if plan.student == THE_TEACHER else resolve_model(plan.student, plan.distill)
    load_model_config(student, plan.distill)
    preflight(training_plan(plan.distill, "distill"), student)
    require("onnxruntime")
    if plan.push.repo_id:
        check_repo_id(plan.push.repo_id)


def check_folder(folder: Path) -> None:
    """The run's folder is new, empty, or one ``distill run`` made (it holds ``summary.json``)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file; distill run writes a folder: pass another --output or --name")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / RunSummary.FILE).is_file():
        raise UsageError(
            f"{folder} exists and was not made by distill run (no {RunSummary.FILE}); refusing to write there"
        )


def start(plan: RunPlan) -> RunSummary:
    """The folder's summary: the one an earlier call left (its steps may be reused), else a new one."""
    try:
        summary = RunSummary.read(plan.folder)
    except ValueError as err:
        raise DistillError(f"{plan.folder / RunSummary.FILE} is damaged ({str(err).splitlines()[0]}); "
                           "move it away to start this run over") from None  # fmt: skip
    if summary is None:
        summary = RunSummary(dataset=str(plan.finetune.dataset), teacher=plan.teacher, student=plan.student)
    summary.teacher, summary.student = plan.teacher, plan.student
    plan.folder.mkdir(parents=True, exist_ok=True)
    summary.write(plan.folder)
    return summary


def run(plan: RunPlan, overwrite: bool = False, until: str | None = None) -> RunSummary:
    """Every step in turn, the summary written after each; the evaluate step's gates before any push."""
    check(plan)
    summary = start(plan)
    steps = plan.steps[: plan.steps.index(until) + 1] if until else plan.steps
    redo = False  # once a step runs, the steps after it run too: their inputs are new
    for number, step in enumerate(steps, 1):
        where = f"[{number}/{len(steps)}] {step}"
        if step == "prepare":  # said once the later steps are known to be runnable: a refusal is one line
            found = prepare_step(plan, summary)
            plan.fingerprints = fingerprints(plan, summary.steps["prepare"].fingerprint, summary.split)
            refuse_stale(plan, summary, steps, overwrite)
            for line in (where, *found):
                info(line)
        elif not redo and reusable(plan, summary, step):
            summary.steps[step].status = "reused"
            info(f"{where}: reused {summary.steps[step].output or ''}".rstrip())
        else:
            redo = True
            timed(summary, step, lambda s=step: STEP_RUNS[s](plan, summary, overwrite), where, plan.fingerprints[step])
        summary.write(plan.folder)
        if step == "evaluate" and (failures := gate_failures(plan, summary)):
            raise DistillError("gate failed: " + "; ".join(failures))
    return summary


def reusable(plan: RunPlan, summary: RunSummary, step: str) -> bool:
    """The step's recorded result has this call's digest and is still there."""
    record, output = summary.steps.get(step), plan.output_of(step)
    return (
        record is not None
        and record.fingerprint == plan.fingerprints[step]
        and (output is None or output.exists())
    )


def timed(summary: RunSummary, step: str, call: Callable[[], str | None], where: str, fingerprint: str) -> None:
    """Run one step and record it, with the digest it ran with."""
    info(where)
    began = time.perf_counter()
    output = call()
    summary.steps[step] = StepRecord(
        status="given" if output == "given" else "done",
        fingerprint=fingerprint,
        seconds=round(time.perf_counter() - began, 2),
        output=None if output in ("given", None) else str(output),
    )


def refuse_stale(plan: RunPlan, summary: RunSummary, steps: tuple[str, ...], overwrite: bool) -> None:
    """Before any training: a step whose output is there but made with other settings is redone only with
    ``--overwrite``, and so are the steps after it."""
    stale = False
    for step in steps[1:]:
        output = plan.output_of(step)
        stale = stale or not reusable(plan, summary, step)
        if stale and output is not None and output.exists() and not overwrite:
            made = "with other settings, or from other inputs" if step in summary.steps else "by another command"
            raise UsageError(
                f"{step}: {output} was made {made}; pass --overwrite to redo it and the steps after it, "
                "or another --name"
            )


def fingerprints(plan: RunPlan, data: str, split: str | None) -> dict[str, str]:
    """Each step's digest: its own settings (with what the plan sets from the data where they leave it unset)
    and the digest of the step it reads from."""
    from distill_cli.training.plan import recipe_defaults

    defaults = recipe_defaults()
    finetune = (
        sha("given", (plan.teacher_dir / "run.json").read_bytes())
        if plan.teacher_trained
        else sha("finetune", settings(plan.finetune), data, defaults)
    )
    student = plan.distill.training_settings() | {"teacher": None}
    if plan.student == THE_TEACHER:
        student["student"] = THE_TEACHER
    distill = sha("distill", json.dumps(student, sort_keys=True), finetune, data, defaults)
    export = sha("export", plan.export.model_dump_json(), settings(plan.export_cfg, "max_length", "seed"), distill)
    evaluate = sha("evaluate", plan.evaluate.model_dump_json(), str(split), export)
    push = sha("push", plan.push.model_dump_json(), evaluate)
    return {"finetune": finetune, "distill": distill, "export": export, "evaluate": evaluate, "push": push}


def settings(cfg: Config, *keys: str) -> str:
    values = cfg.training_settings()
    return json.dumps({k: values[k] for k in keys} if keys else values, sort_keys=True)


# ---------------------------------------------------------------------------------------------- the steps


def prepare_step(plan: RunPlan, summary: RunSummary) -> list[str]:
    """Read and check the data before any training (``prepare``, for the teacher's tokenizer; cached), and
    what it found, to say."""
    from distill_cli.commands.prepare import prepare_command
    from distill_cli.commands.prepare import summary as prepared_summary

    began = time.perf_counter()
    cfg = plan.finetune
    if plan.teacher_trained:  # tokenized for the teacher run, in its label order
        cfg = plan.distill.model_copy(update={"student": str(plan.teacher_dir)})
    result = prepare_command(cfg, None, False)
    m = result.manifest
    data = prepared_summary(result)
    summary.data = {k: data[k] for k in ("splits", "num_labels", "oos_setting", "validation", "per_intent")}
    summary.split = "test" if m.splits.get("test") else "validation"
    seconds = round(time.perf_counter() - began, 2)
    summary.steps["prepare"] = StepRecord(status="done", fingerprint=m.content_hash, seconds=seconds)
    found = [f"data: {', '.join(f'{k} {v:,}' for k, v in m.splits.items())}; {len(m.labels)} labels"]
    advice = fallback_advice(m.few_shot, m.open_set) if plan.fallback_pair else None
    return found + [line for line in (m.describe_shape(), advice) if line]


def finetune_step(plan: RunPlan, summary: RunSummary, overwrite: bool) -> str:
    if plan.teacher_trained:
        info(f"teacher: {plan.teacher}, a finished run, distilled from as it is")
        return "given"
    info(f"teacher: fine-tuning {plan.teacher}")
    return train_step(plan.finetune, "finetune", overwrite)


def distill_step(plan: RunPlan, summary: RunSummary, overwrite: bool) -> str:
    cut = f", {plan.distill.student_layers} of its layers" if plan.distill.student_layers else ""
    info(f"student: {'the teacher' if plan.student == THE_TEACHER else plan.student}{cut}")
    return train_step(plan.distill, "distill", overwrite)


def train_step(cfg: Config, command: str, overwrite: bool) -> str:
    """``finetune`` or ``distill`` into its folder; an interrupted one (a ``.partial`` folder with a
    checkpoint, started with these settings) resumes from its last checkpoint."""
    from distill_cli.commands.train import render, train
    from distill_cli.runs import RunFolder, started_settings, usable_checkpoint

    partial = RunFolder(cfg.output, generated=False).partial
    resume = False
    if partial.is_dir():
        same = started_settings(partial) == cfg.training_settings()
        resume = same and usable_checkpoint(partial) is not None
        if not resume and not overwrite and not same:
            raise UsageError(f"{partial} holds an interrupted run with other settings; pass --overwrite to start over")
        info(f"resuming {partial.name} from its last checkpoint" if resume else f"starting {partial.name} over")
    record = train(cfg, command, resume=resume, overwrite=overwrite or (partial.is_dir() and not resume))
    render(record)
    return record.output


def export_step(plan: RunPlan, summary: RunSummary, overwrite: bool) -> str:
    from distill_cli.commands import export as command

    o = plan.export
    record = command.export(plan.export_cfg, str(plan.student_dir), plan.export_dir, "onnx", o.quantize,
                            o.trim_vocab, overwrite, o.max_accuracy_drop, o.trim_keep)  # fmt: skip
    command.render(record)
    return record["output"]


def evaluate_step(plan: RunPlan, summary: RunSummary, overwrite: bool) -> str:
    """Teacher, student and export side by side on test (validation where there is none); the report
    where matplotlib is installed."""
    from distill_cli.commands import evaluate as command
    from distill_cli.commands import evaluate_render

    # Named as the run's folder names them (the runs folder is the run's): teacher, student, student-onnx-int8
    cfg = plan.evaluate_cfg.model_copy(update={"runs_dir": plan.folder})
    paths = (plan.teacher_dir, plan.student_dir, plan.export_dir)
    models = [p.name if p.parent == plan.folder else str(p) for p in paths]
    o = plan.evaluate
    results = command.evaluate_models(cfg, models, split=summary.split or "test", threads=o.threads,
                                      latency_runs=o.latency_runs, batch_size=o.batch_size,
                                      extra_metrics=o.metric)  # fmt: skip
    evaluate_render.render(results)
    path = plan.folder / "eval_results.json"
    command.write_json(results, path)
    summary.metrics = {role: headline(m) for role, m in zip(("teacher", "student", "export"), results.models)}
    summary.report = write_report(results, plan.folder / "report.html")
    return str(path)


def headline(result: ModelResult) -> dict[str, Any]:
    """A model's figures in the summary: the headline metrics, and those with its out-of-scope rule."""
    figures = {k: result.metric(k) for k in HEADLINE if result.metric(k) is not None}
    if result.oos_rule is not None:
        figures["with_rule"] = {k: result.rule_metric(k) for k in WITH_RULE}
    return figures


def write_report(results: EvalReport, path: Path) -> str | None:
    """The HTML report, or None (said) where matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        info("no HTML report: it needs matplotlib (pip install 'distill-cli[plot]')")
        return None
    from distill_cli.commands.evaluate_report import write_report as write
    from distill_cli.machine import machine

    write(results, path, machine())
    info(f"report written to {path}")
    return str(path)


def push_step(plan: RunPlan, summary: RunSummary, overwrite: bool) -> str:
    from distill_cli.commands import publish

    o = plan.push
    result = publish.push(plan.distill, str(plan.student_dir), o.repo_id, private=o.private,
                          commit_message=o.commit_message)  # fmt: skip
    summary.pushed = result["url"]
    info(f"pushed {len(result['files'])} files to {result['url']}")
    return result["url"]


STEP_RUNS = {
    "finetune": finetune_step,
    "distill": distill_step,
    "export": export_step,
    "evaluate": evaluate_step,
    "push": push_step,
}


def gate_failures(plan: RunPlan, summary: RunSummary) -> list[str]:
    """The evaluate step's gates (``evaluate:`` section), on the results it left; none before it ran."""
    from distill_cli.commands.evaluate import check_gates

    path = plan.folder / "eval_results.json"
    if "evaluate" not in summary.steps or not path.is_file():
        return []
    o = plan.evaluate
    try:
        report = EvalReport.model_validate_json(path.read_text())
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise DistillError(f"{path} is not an evaluation this tool wrote ({str(err).splitlines()[0]}); "
                           "pass --overwrite to evaluate again") from None  # fmt: skip
    return check_gates(report, o.min_accuracy, o.max_latency_ms, o.max_accuracy_drop)
