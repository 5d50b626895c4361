"""``distill search``: the student's alpha, temperature, epochs and learning rate (whatever the config's
``search:`` section ranges over), chosen by Optuna on what is deployed, paying for the teacher once: the
validation accuracy expected with the out-of-scope rule at ``oos_share`` where validation has out-of-scope
queries, else the validation accuracy (``metrics.EXPECTED``).

A study lives in its folder ``<runs>/<name>/``: ``study.journal`` (Optuna's journal file storage, safe
for several local processes) unless ``--storage`` names an Optuna RDB URL that workers on several machines
share. What every trial needs is set up once per invocation and shared: the data, the teacher's logits
(computed, or read from the cache) and the probe's frozen features. No trial loads the teacher. Each
trial builds its student, trains it and reports that value at every epoch, so that the pruner
stops hopeless trials early. The best trial's model is kept as the run folder ``<name>/best/`` (no other
trial folder stays behind), and ``best.yaml`` is a complete config: ``distill distill --config best.yaml``
trains that student again.

Sampling: TPE, seeded with ``seed + trial number``. One worker with one seed always draws the same trials;
a continued study or a second worker draws new ones instead of repeating the first.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from distill_cli import modeling
from distill_cli.commands.search_report import plot_study
from distill_cli.config import Config
from distill_cli.errors import DistillError, StudyInterrupted, UsageError
from distill_cli.extras import require
from distill_cli.files import atomic_file, file_lock
from distill_cli.hub import redact_url
from distill_cli.metrics import EXPECTED
from distill_cli.runs import RunFolder, RunRecord, check_name, slug
from distill_cli.search_space import SearchSettings
from distill_cli.study_storage import STUDY_FILE, check_same_study, identity, make_pruner, open_storage
from distill_cli.training.callbacks import ReportToTrial, RichProgress, StopOnSignal
from distill_cli.training.plan import Plan, make_plan, preflight
from distill_cli.training.recipe import (
    build_student,
    build_trainer,
    finish_training,
    probe_head,
    shared_setup,
)
from distill_cli.training.setup import Setup, Trained
from distill_cli.ui import info, warn

BEST_RUN = "best"
BEST_CONFIG = "best.yaml"
TRIALS = "trials"  # where a trial trains; with a tracker (report_to) its logs stay there, never a model
OURS = (STUDY_FILE, BEST_RUN, BEST_CONFIG, TRIALS)  # what marks a folder as a study's


@dataclass
class Study:
    """One invocation of a study: its plan (the config and the space), folder, the Optuna study and what
    every trial shares."""

    plan: Plan
    name: str
    folder: Path
    student: modeling.ModelRef
    optuna: object  # optuna.Study
    setup: Setup | None = None
    last: Trained | None = None  # the trial just trained, until keep_if_best has seen it

    @property
    def cfg(self) -> Config:
        return self.plan.cfg

    @property
    def settings(self) -> SearchSettings:
        return self.plan.search


def search(cfg: Config, settings: SearchSettings, name: str | None, plot: Path | None = None) -> dict:
    """Run ``settings.trials`` trials (fewer on ``timeout`` or a signal) and return the study's summary;
    ``plot`` also writes the history and importances there."""
    study = open_study(make_plan(cfg, "distill", settings), name)
    start = time.perf_counter()
    _, study.setup = shared_setup(study.plan, study.student)  # a study's space is its own: no data recipe
    added = run_trials(study, start)
    if completed(study):
        write_best_config(study)
    if plot is not None:
        plot_study(study.optuna, study.name, plot)
    return summary(study, added, time.perf_counter() - start)


def open_study(plan: Plan, name: str | None) -> Study:
    """Everything checked before any compute (the plan's preflight, the models' names, the study folder
    and its storage). Creates the study, or continues it when it was started with the same settings."""
    optuna = require("optuna")
    cfg, settings = plan.cfg, plan.search
    for teacher in cfg.teachers:
        modeling.resolve_model(teacher, cfg)  # a misspelt model fails here, before the study folder exists
    student = modeling.resolve_model(cfg.student, cfg)
    preflight(plan, student)
    name = name or f"search-{slug(cfg.lead_teacher or 'labels')}-{slug(cfg.student)}"
    check_name(name, cfg.runs_dir, "study")
    folder = cfg.runs_dir / name
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / f).exists() for f in OURS):
        raise UsageError(f"{folder} exists and is not a study folder; pass another --name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=open_storage(settings, folder),
            direction="maximize",
            pruner=make_pruner(settings.pruner),
            load_if_exists=True,
        )
    except Exception as err:  # replaying a damaged journal fails in many ways (bad bytes, JSON, op codes)
        if settings.storage is not None or isinstance(err, DistillError):
            raise
        raise UsageError(
            f"study file {folder / STUDY_FILE} is damaged ({type(err).__name__}); move it away to start the "
            "study afresh, or pass another --name"
        ) from None
    check_same_study(study, identity(cfg, settings), name)
    return Study(plan, name, folder, student, study)


def run_trials(study: Study, start: float) -> list[int]:
    """Trials until ``trials`` are added, ``timeout`` passes or a signal arrives (the current trial finishes;
    a second signal abandons it). A trial that raises is recorded as failed and the study goes on."""
    import optuna
    from optuna.trial import TrialState

    stopper, added, errors = StopOnSignal(), [], []
    stopper.install()
    try:
        for _ in range(study.settings.trials):
            if stopper.signum is not None or timed_out(study.settings, start):
                break
            trial = study.optuna.ask()
            study.optuna.sampler = optuna.samplers.TPESampler(
                seed=study.cfg.seed + trial.number, n_startup_trials=study.settings.startup_trials
            )
            added.append(trial.number)
            try:
                value = run_trial(study, trial)
            except optuna.TrialPruned:
                study.optuna.tell(trial, state=TrialState.PRUNED)
            except KeyboardInterrupt:
                study.optuna.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as err:  # noqa: BLE001 - out of memory, a NaN loss...: the study goes on
                message = f"{type(err).__name__}: {err}".splitlines()[0]
                trial.set_user_attr("error", message)
                study.optuna.tell(trial, state=TrialState.FAIL)
                errors.append(message)
                warn(f"trial {trial.number} failed: {message}")
            else:
                study.optuna.tell(trial, value)
                keep_if_best(study, trial.number, value)
    finally:
        stopper.uninstall()
        remove_if_empty(study.folder / TRIALS)
    if errors and len(errors) == len(added) and not completed(study):
        raise DistillError(f"every trial failed; the last: {errors[-1]}")
    if stopper.signum is not None:
        raise StudyInterrupted(study.name, len(added), stopper.signum)
    return added


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not there, or holds a tracker's logs (or another worker's trial)
        pass


def timed_out(settings: SearchSettings, start: float) -> bool:
    return settings.timeout is not None and time.perf_counter() - start >= settings.timeout


def completed(study: Study) -> list:
    return [t for t in study.optuna.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def run_trial(study: Study, trial) -> float:
    """Train one student with this trial's values; returns its last epoch's value. Its model stays in
    memory (``study.last``) until ``keep_if_best`` has seen it."""
    import optuna

    start = time.perf_counter()
    folder = study.folder / TRIALS / str(trial.number)
    plan = study.plan.for_trial(study.settings.suggest(trial), folder)
    try:
        model, layers_kept = build_student(plan, study.setup)
        probe_head(plan, model, study.setup)
        reporter = ReportToTrial(trial)
        trainer = build_trainer(plan, model, study.setup, [RichProgress(f"trial {trial.number}"), reporter])
        trainer.train()
    finally:
        if not plan.cfg.report_to:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    trial.set_user_attr("seconds", round(seconds, 2))
    if reporter.pruned:
        raise optuna.TrialPruned(f"pruned after epoch {len(reporter.values)}")
    if not reporter.values:
        raise DistillError("the trial ended without a validation pass")
    study.last = Trained(plan, trainer, layers_kept, seconds)
    return reporter.values[-1]


def keep_if_best(study: Study, number: int, value: float) -> None:
    """Save the trial just finished as ``<study>/best/`` when it is the study's best and better than the model
    already there (which another worker may have written meanwhile: the lock makes the check and the swap one
    step)."""
    trained, study.last = study.last, None
    if study.optuna.best_trial.number != number:
        return
    with file_lock(study.folder / ".best.lock"):
        held = RunRecord.read(study.folder / BEST_RUN)
        if held is not None and held.search is not None and held.search["value"] >= value:
            return
        run = RunFolder(study.folder / BEST_RUN, generated=False)
        shutil.rmtree(run.partial, ignore_errors=True)  # a crashed save of our own
        search = {"study": study.name, "trial": number, "value": value}
        finish_training(trained, run, study.setup, search=search)
    info(f"trial {number}: new best, validation {EXPECTED.long} {value:.4f}, kept in {run.final}")


def write_best_config(study: Study) -> Path:
    """``best.yaml``: the study's config with the best trial's values, ready for ``distill distill --config``."""
    best = study.optuna.best_trial
    cfg = study.cfg.model_copy(update={**best.params, "name": None, "output": None})
    path = study.folder / BEST_CONFIG
    header = (
        f"# Best trial of study {study.name}: trial {best.number}, validation {EXPECTED.long} {best.value:.4f}.\n"
        f"# Train it again with: distill distill --config {path}\n"
    )
    with atomic_file(path) as tmp:
        tmp.write_text(header + cfg.to_yaml())
    return path


def trial_rows(study: Study) -> list[dict]:
    """Every trial of the study, best first: values, the value at each epoch, state, seconds."""
    rows = []
    for t in study.optuna.get_trials(deepcopy=False):
        values = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "params": t.params,
                "epoch_values": values,
                "value": t.value,
                "seconds": t.user_attrs.get("seconds"),
                "error": t.user_attrs.get("error"),
            }
        )
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}
    return sorted(rows, key=lambda r: (order.get(r["state"], 5), -(r["value"] or 0.0), r["trial"]))


def summary(study: Study, added: list[int], wall_s: float) -> dict:
    """The ``--json`` object: the study, its best trial, this invocation's costs, and every trial."""
    rows = trial_rows(study)
    mine = [r for r in rows if r["trial"] in added]
    planned = sum(r["params"].get("epochs", study.cfg.epochs) for r in mine if r["state"] != "fail")
    run = sum(len(r["epoch_values"]) for r in mine if r["state"] != "fail")
    best = completed(study) and study.optuna.best_trial
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}
    return {
        "study": study.name,
        "folder": str(study.folder),
        "storage": redact_url(study.settings.storage) if study.settings.storage else str(study.folder / STUDY_FILE),
        "objective": f"validation {EXPECTED.key}",
        "trials": counts,
        "added": len(added),
        "best": None
        if not best
        else {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            "run": str(study.folder / BEST_RUN) if (study.folder / BEST_RUN).is_dir() else None,
            "config": str(study.folder / BEST_CONFIG),
        },
        "wall_s": round(wall_s, 2),
        "teacher_s": round(study.setup.teacher.seconds, 2),
        "teacher_cache_reused": study.setup.teacher.cache_reused,
        "student_s": round(sum(r["seconds"] or 0.0 for r in mine), 2),
        "epochs_planned": planned,
        "epochs_run": run,
        "epochs_saved_by_pruning": round(1 - run / planned, 4) if planned else 0.0,
        "table": rows,
    }
