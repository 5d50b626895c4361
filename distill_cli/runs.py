"""Run folders: what ``finetune`` and ``distill`` write, and ``run.json``, the typed record of a run.

A run trains in ``<name>.partial/`` and is renamed to ``<name>/`` when it finishes, so a folder without
``.partial`` is always a finished run. ``run.json`` is written and read only here, through ``RunRecord``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from distill_cli.config import PLACEMENT, Config
from distill_cli.data.sources import sha
from distill_cli.errors import UsageError
from distill_cli.files import check_replaceable, move_into_place, try_lock
from distill_cli.oos import OOSRule
from distill_cli.records import ExportRecord, Record, public_json

RUN_FILE = "run.json"
PARTIAL_MARK = ".distill-run"  # in <name>.partial/: the folder is a run this tool started


class StudentRecord(BaseModel):
    spec: str
    location: str
    layers_kept: list[int] | None = None
    parameters: int
    pooling: str = "cls"
    head_init: str = "random"


class TeacherRecord(BaseModel):
    spec: str
    location: str
    mode: str  # cached, online, or labels (a file of labels, ``teacher_labels``)
    cache_reused: bool | None = None
    labelled: int | None = None  # labels: the training rows the file gave a target
    labels_alone: int | None = None  # labels: the training rows it did not cover, trained on their label alone
    members: list[str] | None = None  # an ensemble: every teacher (``spec`` is the first), and how they were
    ensemble: str | None = None  # combined: the mean of their logits, or of their probabilities


class DatasetRecord(BaseModel):
    path: str
    source: str
    manifest_hash: str
    splits: dict[str, int]
    oos_label: str | None = None

    @classmethod
    def of(cls, prepared) -> DatasetRecord:
        """The record of a ``data.prepared.Prepared`` dataset (its folder and manifest)."""
        m = prepared.manifest
        return cls(path=str(prepared.path), source=m.source, manifest_hash=m.content_hash, splits=m.splits,
                   oos_label=m.oos_label)  # fmt: skip


class RecordedConfig(Config):
    """The settings a run trained with (its plan's ``Config``), as ``run.json`` records them: typed, with the
    keys a version before or after this one recorded and this one does not know kept as they are (a record is
    read, not run)."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)


class RunRecord(Record):
    """``run.json``: the effective config, models, data, versions, timings and per-epoch validation metrics."""

    FILE: ClassVar[str] = RUN_FILE

    command: str
    output: str
    name: str
    config: RecordedConfig
    student: StudentRecord
    teacher: TeacherRecord | None = None
    dataset: DatasetRecord
    labels: list[str]
    seed: int
    world_size: int
    precision: str | None = None  # as resolved on the machine that trained it (config: `auto` and the rest)
    versions: dict[str, str]
    train_s: float
    teacher_cache_s: float
    eval_s: float  # of train_s, the time spent evaluating after each epoch: benchmarks subtract it
    epochs: list[dict[str, float | None]]
    metrics: dict[str, float | None]
    kept_epoch: float | None = None  # the epoch saved: the best by expected accuracy (keep_best_epoch), else the last
    stopped_early: bool | None = None  # training stopped before its epochs (``patience`` epochs without a better one)
    oos_rule: OOSRule | None = None  # chosen on validation after training; None: argmax decides
    export: ExportRecord | None = None  # in an exported folder: its export.json
    search: dict[str, Any] | None = None  # the best model of a study: the study, the trial and its value
    recipe: str | None = None  # what the data made the recipe (few-shot data: its epochs, ...), as said
    rows: dict[str, int] | None = None  # training rows by source (labelled, names, transfer, variants, ...), drops

    def public(self) -> bytes:
        """What ``push`` uploads: no local path, no cache key (the dataset's cache folder is named by its
        source), no folder of this machine; still a record the commands read."""
        data = self.model_dump(mode="json")
        data["dataset"]["path"] = data["dataset"]["source"]
        data["config"].update(runs_dir="runs", cache_dir=None, output=None)
        return json.dumps(public_json(data), indent=2).encode()


def is_run(folder: Path) -> bool:
    return (folder / RUN_FILE).is_file()


@dataclass
class RunFolder:
    """Where a run is written: ``final`` once finished, ``partial`` while training."""

    final: Path
    generated: bool  # the name was made up here (it holds a timestamp) and must be passed again to resume
    resume_from: Path | None = None
    lock: Any = None  # the open lock file while this process writes the run (released when it exits)
    settings: dict[str, Any] | None = None  # what the run trains with (``Config.training_settings``)

    @property
    def partial(self) -> Path:
        return self.final.with_name(self.final.name + ".partial")

    def release(self) -> None:
        """Let another process write a run of this name (the lock file stays: removing it would race)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def slug(spec: str) -> str:
    """A model argument as a folder-name part: ``static:minilm-l6`` -> ``static-minilm-l6``."""
    return re.sub(r"[^\w.-]+", "-", Path(spec).name or spec).strip("-") or "model"


def check_name(name: str, runs_dir: Path, what: str, hint: str = "") -> None:
    """A run's or a study's name is one folder under the runs folder: nothing is written outside it."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise UsageError(f"--name {name!r}: a {what} name is one folder name under {runs_dir}{hint}")


def run_path(cfg: Config, command: str) -> tuple[Path, bool]:
    """The run folder, and whether its name was generated. A name is one folder under the runs folder
    (``--output`` takes any path)."""
    if cfg.output is not None:
        return cfg.output, False
    if cfg.name:
        check_name(cfg.name, cfg.runs_dir, "run", "; use --output")
        return cfg.runs_dir / cfg.name, False
    return cfg.runs_dir / f"{command}-{slug(cfg.student)}-{time.strftime('%Y%m%d-%H%M%S')}", True


def open_run(
    final: Path,
    generated: bool,
    resume: bool,
    overwrite: bool,
    is_main: bool,
    world_size: int = 1,
    locks: Path = None,
    settings: dict[str, Any] | None = None,
) -> RunFolder:
    """Check the run folder before any compute and find the checkpoint to resume from, if asked.
    A finished run is never replaced without ``overwrite``, nor an interrupted one without ``resume``;
    a run of the same name that another process is writing is refused: a lock (a file in ``locks``, the
    cache, so that the runs folder holds runs only) held until that process ends. A run is resumed only
    with the ``settings`` it started with."""
    run = RunFolder(final, generated, settings=settings)
    if is_main and locks is not None:
        run.lock = try_lock(run_lock(final, locks))
        if run.lock is None:
            raise UsageError(f"run {final.name} is being written by another distill process; wait, or use another name")
    try:
        check_run_folders(run, resume, overwrite, is_main, world_size)
    except BaseException:
        run.release()
        raise
    return run


def check_run_folders(run: RunFolder, resume: bool, overwrite: bool, is_main: bool, world_size: int) -> None:
    """The checks of ``open_run``; sets ``run.resume_from`` when resuming, clears an old ``.partial``."""
    final = run.final
    check_replaceable(
        final,
        overwrite,
        is_run,
        taken=f"run folder {final} already exists; pass --overwrite to replace it, or another --name",
        not_ours=f"{final} is not a run made by distill (no {RUN_FILE}); refusing to replace it",
    )
    if resume:
        run.resume_from = usable_checkpoint(run.partial, world_size) if run.partial.exists() else None
        if run.resume_from is None:
            raise UsageError(f"nothing to resume: {run.partial} holds no checkpoint; pass --overwrite to start over")
        check_same_settings(run)
        return
    if run.partial.exists():
        if not overwrite:
            raise UsageError(
                f"{run.partial} holds an interrupted run; pass --resume to continue it or --overwrite to start over"
                if usable_checkpoint(run.partial, world_size) is not None
                else f"{run.partial} holds an interrupted run that saved no checkpoint; pass --overwrite to start over"
            )
        if not is_our_partial(run.partial):
            raise UsageError(f"{run.partial} was not started by distill; refusing to replace it")
        if is_main:
            shutil.rmtree(run.partial)


def run_lock(final: Path, locks: Path) -> Path:
    """The lock file of the run folder ``final``: one per folder, whatever path names it."""
    return locks / f"run-{sha(str(final.resolve()))[:16]}.lock"


def mark_started(run: RunFolder) -> None:
    """Create ``<name>.partial/`` with the mark that makes it this tool's (rank 0, once every rank has
    checked the folders: the mark is what lets ``--overwrite`` replace it later). The mark records the
    settings the run trains with, which a resume must repeat. A resumed run keeps the mark it has."""
    run.partial.mkdir(parents=True, exist_ok=True)
    mark = run.partial / PARTIAL_MARK
    if run.resume_from is None or not mark.is_file():
        mark.write_text(json.dumps({"distill_run": "in progress", "settings": run.settings}, indent=2) + "\n")


def started_settings(partial: Path) -> dict[str, Any] | None:
    """The settings an interrupted run in ``partial`` started with; None for a mark of an older distill, or
    none: nothing to compare with."""
    try:
        return json.loads((partial / PARTIAL_MARK).read_text()).get("settings")
    except (OSError, ValueError, AttributeError):
        return None


def check_same_settings(run: RunFolder) -> None:
    """A run resumes with the settings it started with: another learning rate, seed or dataset mixed into
    its second half would make a model no setting describes. Only ``PLACEMENT`` settings may change."""
    started = started_settings(run.partial)
    if started is None or run.settings is None:
        from distill_cli.ui import warn

        warn(f"{run.partial} does not record the settings it started with; resuming with the ones given")
        return
    # A setting a later version added is not in an older mark: the run started with its default.
    defaults = Config().training_settings()
    started = {**{k: v for k, v in defaults.items() if k not in started}, **started}
    if started.get("patience") is None and run.settings.get("patience") is not None:
        # An older mark holds patience null where the run stopped with the default now written out.
        from distill_cli.static import encoder_spec

        default = Config().effective_patience(encoder_spec(str(started.get("student") or "")) is not None)
        started["patience"] = default if started.get("keep_best_epoch") else None
    changed = sorted(k for k in started.keys() | run.settings.keys() if started.get(k) != run.settings.get(k))
    if changed:
        diffs = ", ".join(f"{k} {started.get(k)!r} → {run.settings.get(k)!r}" for k in changed)
        raise UsageError(
            f"cannot resume {run.final.name} with other settings ({diffs}): resume with the ones it started with, "
            f"or pass --overwrite to start over; only {', '.join(PLACEMENT)} may change"
        )


def is_our_partial(partial: Path) -> bool:
    """A ``.partial`` folder this tool started: it carries the mark, or holds nothing but checkpoints."""
    return (partial / PARTIAL_MARK).is_file() or all(p.name.startswith("checkpoint-") for p in partial.iterdir())


def usable_checkpoint(partial: Path, world_size: int = 1) -> Path | None:
    """The newest checkpoint whose every file reads; a damaged newer one is named in a warning. None when
    there is no checkpoint; a one-line error naming the file when there are some and none is usable."""
    from distill_cli.training.checkpoint import checkpoint_problem
    from distill_cli.ui import warn

    ckpts = sorted(partial.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    damaged = []
    for ckpt in ckpts:
        problem = checkpoint_problem(ckpt, world_size)
        if problem is None:
            for bad in damaged:
                warn(f"{bad} is not usable; resuming from {ckpt.name}")
            return ckpt
        damaged.append(f"{ckpt.name}: {problem}")
    if damaged:
        raise UsageError(f"cannot resume from {partial}: {damaged[0]}; pass --overwrite to start over")
    return None


def finish_run(run: RunFolder, record: RunRecord) -> None:
    """Drop checkpoints and the mark, write run.json, and move the run into place in one rename."""
    for ckpt in run.partial.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    (run.partial / PARTIAL_MARK).unlink(missing_ok=True)
    record.write(run.partial)
    move_into_place(run.partial, run.final)


def config_with_run_dataset(cfg: Config, run_dir: Path | None, purpose: str) -> Config:
    """``cfg``, with the dataset of the run in ``run_dir`` when ``--dataset`` is not given: its prepared
    folder when it is still there, else the source it was prepared from."""
    if cfg.dataset:
        return cfg
    record = RunRecord.read(run_dir)
    if record is None:
        raise UsageError(f"no dataset for {purpose}: pass --dataset (the model is not a run that names one)")
    from distill_cli.data.manifest import DamagedManifest, Manifest

    prepared = Path(record.dataset.path)
    try:
        usable = prepared.is_dir() and Manifest.read(prepared) is not None
    except DamagedManifest:
        usable = False  # prepared again from its source (in the cache: rebuilt, with a warning)
    return cfg.model_copy(update={"dataset": str(prepared) if usable else record.config.dataset})


def oos_rule_of(run_dir: Path | None) -> OOSRule | None:
    """The out-of-scope rule a run chose on validation; None for a folder that is not a run, or has none."""
    record = RunRecord.read(run_dir)
    return record.oos_rule if record is not None else None
