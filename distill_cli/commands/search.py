"""``distill search``: the student's alpha, temperature, epochs and learning rate (whatever the config's
``search:`` section ranges over), chosen by Optuna on validation accuracy, paying for the teacher once.

A study lives in its folder ``<runs>/<name>/``: ``study.journal`` (Optuna's journal file storage, safe
for several local processes) unless ``--storage`` names an Optuna RDB URL that workers on several machines
share. What every trial needs is set up once per invocation and shared: the data, the teacher's logits
(computed, or read from the cache) and the probe's frozen features. No trial loads the teacher. Each
trial builds its student, trains it and reports every epoch's validation accuracy, so that the pruner
stops hopeless trials early. The best trial's model is kept as the run folder ``<name>/best/`` (no other
trial folder stays behind), and ``best.yaml`` is a complete config: ``distill distill --config best.yaml``
trains that student again.

Sampling: TPE, seeded with ``seed + trial number``. One worker with one seed always draws the same trials;
a continued study or a second worker draws new ones instead of repeating the first.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.errors import DistillError, StudyInterrupted, UsageError
from distill_cli.extras import require
from distill_cli.files import atomic_file, file_lock
from distill_cli.hub import redact_url
from distill_cli.runs import RunFolder, RunRecord, check_name, slug
from distill_cli.search_space import SearchSettings
from distill_cli.training.callbacks import ReportToTrial, RichProgress, StopOnSignal
from distill_cli.training.plan import Plan, make_plan, preflight
from distill_cli.training.recipe import (
    Setup,
    Trained,
    build_student,
    build_trainer,
    finish_training,
    probe_head,
    shared_setup,
)
from distill_cli.ui import info, warn

STUDY_FILE = "study.journal"
BEST_RUN = "best"
BEST_CONFIG = "best.yaml"
TRIALS = "trials"  # where a trial trains; with a tracker (report_to) its logs stay there, never a model
OURS = (STUDY_FILE, BEST_RUN, BEST_CONFIG, TRIALS)  # what marks a folder as a study's
# The median pruner waits for this many finished trials, then stops a trial whose accuracy at an epoch is
# below the median of the earlier trials' at that epoch (from the first epoch on).
PRUNER_STARTUP_TRIALS = 3


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
    study.setup = shared_setup(study.plan, study.student)
    added = run_trials(study, start)
    if completed(study):
        write_best_config(study)
    if plot is not None:
        plot_study(study, plot)
    return summary(study, added, time.perf_counter() - start)


def open_study(plan: Plan, name: str | None) -> Study:
    """Everything checked before any compute (the plan's preflight, the models' names, the study folder
    and its storage). Creates the study, or continues it when it was started with the same settings."""
    optuna = require("optuna")
    cfg, settings = plan.cfg, plan.search
    if cfg.teacher:
        modeling.resolve_model(cfg.teacher, cfg)  # a misspelt model fails here, before the study folder exists
    student = modeling.resolve_model(cfg.student, cfg)
    preflight(plan, student)
    name = name or f"search-{slug(cfg.teacher)}-{slug(cfg.student)}"
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


def open_storage(settings: SearchSettings, folder: Path):
    """The journal file in the study folder, or the RDB that ``--storage`` names (connected now)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if settings.storage is None:
        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))
    url = redact_url(settings.storage)
    if "://" not in settings.storage:
        raise UsageError(f"--storage {url}: expected an Optuna RDB URL such as postgresql://user@host/db")
    try:
        return optuna.storages.RDBStorage(settings.storage)
    except ImportError as err:
        raise UsageError(f"--storage {url}: {missing_driver(err, settings.storage)}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors carry the URL; say it without the password
        first = str(err).splitlines()[0].replace(settings.storage, url)
        raise DistillError(f"--storage {url}: cannot open the study database: {first}") from None


# The module SQLAlchemy imports for a URL's driver -> the PyPI package that provides it.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}


def missing_driver(err: ImportError, url: str) -> str:
    """What to install for a storage URL whose database driver is missing. Optuna re-raises SQLAlchemy's
    ``ModuleNotFoundError`` as a bare ImportError; the module's name is on the one it came from."""
    cause = err
    while cause is not None and not getattr(cause, "name", None):
        cause = cause.__cause__ or cause.__context__
    module = getattr(cause, "name", None)
    if module is None:
        scheme = url.partition("://")[0]
        return f"the database driver for {scheme}:// URLs is not installed"
    package = DRIVER_PACKAGES.get(module, module)
    return f"its database driver '{module}' is not installed: pip install '{package}'"


def make_pruner(kind: str):
    """``median`` (default): with the handful of trials a CPU affords, it needs only a few finished trials
    to judge the next. ``halving``: successive halving (rungs at 1, 3, 9 epochs) for larger studies."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=1)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def identity(cfg: Config, settings: SearchSettings) -> dict:
    """What makes trials comparable, as JSON values under flat names: every training setting
    (``config.<key>``), the space (``space.<key>``) and the pruner."""
    setup = {f"config.{k}": v for k, v in cfg.training_settings().items()}
    space = {f"space.{k}": list(v) for k, v in settings.ranges().items()}
    return json.loads(json.dumps({**setup, **space, "pruner": settings.pruner}))


def check_same_study(study, wanted: dict, name: str) -> None:
    """A study is continued only with the settings it started with; a new one records them."""
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", wanted)
        return
    changed = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
    if changed:
        raise UsageError(
            f"study {name} was started with other settings ({', '.join(changed)}); "
            "continue it with the same ones, or pass another --name"
        )


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
    """Train one student with this trial's values; returns its last validation accuracy. Its model stays in
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
        raise optuna.TrialPruned(f"pruned after epoch {len(reporter.accuracies)}")
    if not reporter.accuracies:
        raise DistillError("the trial ended without a validation pass")
    study.last = Trained(plan, trainer, layers_kept, seconds)
    return reporter.accuracies[-1]


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
    info(f"trial {number}: new best, validation accuracy {value:.4f}, kept in {run.final}")


def write_best_config(study: Study) -> Path:
    """``best.yaml``: the study's config with the best trial's values, ready for ``distill distill --config``."""
    best = study.optuna.best_trial
    cfg = study.cfg.model_copy(update={**best.params, "name": None, "output": None})
    path = study.folder / BEST_CONFIG
    header = (
        f"# Best trial of study {study.name}: trial {best.number}, validation accuracy {best.value:.4f}.\n"
        f"# Train it again with: distill distill --config {path}\n"
    )
    with atomic_file(path) as tmp:
        tmp.write_text(header + cfg.to_yaml())
    return path


def trial_rows(study: Study) -> list[dict]:
    """Every trial of the study, best first: values, validation accuracy per epoch, state, seconds."""
    rows = []
    for t in study.optuna.get_trials(deepcopy=False):
        accuracies = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "params": t.params,
                "validation_accuracy": accuracies,
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
    run = sum(len(r["validation_accuracy"]) for r in mine if r["state"] != "fail")
    best = completed(study) and study.optuna.best_trial
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}
    return {
        "study": study.name,
        "folder": str(study.folder),
        "storage": redact_url(study.settings.storage) if study.settings.storage else str(study.folder / STUDY_FILE),
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


SHORT = {"temperature": "T", "learning_rate": "lr", "student_layers": "layers", "weight_decay": "wd"}


def render(report: dict) -> None:
    """The trials, best first, and the costs, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.ui import console

    keys = sorted({k for r in report["table"] for k in r["params"]}, key=list(SearchSettings.model_fields).index)
    table = Table(title=f"study {report['study']}", title_justify="left")
    for col in ("trial", "state", *(SHORT.get(k, k) for k in keys), "validation accuracy by epoch", "s"):
        table.add_column(col, justify="left" if col.startswith(("state", "validation")) else "right")
    for r in report["table"]:
        params = [f"{r['params'][k]:.3g}" if k in r["params"] else "—" for k in keys]
        epochs = " ".join(f"{a:.3f}" for a in r["validation_accuracy"]) or (r["error"] or "")
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "—"
        table.add_row(str(r["trial"]), r["state"], *params, epochs, seconds)
    console.print(table)
    best = report["best"]
    if best is not None:
        console.print(f"best: trial {best['trial']}, validation accuracy {best['value']:.4f}")
        console.print(f"  config: {best['config']}" + (f"\n  model:  {best['run']}" if best["run"] else ""))
    console.print(
        f"this invocation: {report['added']} trial(s) in {report['wall_s']:.0f}s; teacher {report['teacher_s']:.1f}s, "
        f"students {report['student_s']:.0f}s; pruning skipped {report['epochs_saved_by_pruning']:.0%} of the epochs"
    )


def plot_study(study: Study, path: Path) -> None:
    """Optimisation history (each finished trial, and the best so far) and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    done = sorted(completed(study), key=lambda t: t.number)
    fig, (history, importance) = plt.subplots(1, 2, figsize=(13, 5))
    if done:
        values = [t.value * 100 for t in done]
        history.scatter([t.number for t in done], values, label="finished trial")
        best = [max(values[: i + 1]) for i in range(len(values))]
        history.step([t.number for t in done], best, where="post", label="best so far")
        history.legend(loc="lower right")
    history.set_xlabel("Trial")
    history.set_ylabel("Validation accuracy (%)")
    history.set_title(f"Optimisation history · {study.name}")
    if len(done) >= 2:
        scores = optuna.importance.get_param_importances(study.optuna)
        importance.barh(list(scores)[::-1], list(scores.values())[::-1])
        importance.set_xlabel("Importance (fANOVA)")
    else:
        importance.text(0.5, 0.5, "importances need 2 finished trials", ha="center", va="center")
    importance.set_title("Parameter importances")
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
