"""Where a study lives and what makes it one: Optuna's storage (a journal file in the study folder, or an
RDB that workers share), the pruner, and the settings a study is continued with."""

from __future__ import annotations

import json
from pathlib import Path

from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.hub import redact_url
from distill_cli.search_space import SearchSettings

STUDY_FILE = "study.journal"
# The median pruner waits for this many finished trials, then stops a trial whose accuracy at an epoch is
# below the median of the earlier trials' at that epoch (from the first epoch on).
PRUNER_STARTUP_TRIALS = 3


def open_storage(settings: SearchSettings, folder: Path):
    """The journal file in the study folder, or the RDB that ``--storage`` names (connected now)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if settings.storage is None:
        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))
    url = redact_url(settings.storage)
    if "://" not in settings.storage:
        raise UsageError(f"--storage {url}: expected an Optuna RDB URL such as postgresql://user@host/db")
    try:
        return rdb_storage(settings.storage)
    except ImportError as err:
        raise UsageError(f"--storage {url}: {missing_driver(err, settings.storage)}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors carry the URL; say it without the password
        first = str(err).splitlines()[0].replace(settings.storage, url)
        raise DistillError(f"--storage {url}: cannot open the study database: {first}") from None


SCHEMA_ATTEMPTS = 5


def rdb_storage(url: str):
    """Optuna's RDB storage of ``url``. Workers started together on a new database race to create its
    tables, and all but one fail on a duplicate (PostgreSQL's catalog): they try again, and find the tables."""
    import random
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url)
        except (IntegrityError, ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 + random.random())  # noqa: S311 - a backoff, not a secret


# The module SQLAlchemy imports for a URL's driver -> the PyPI package that provides it.
DRIVER_PACKAGES = {
    "psycopg": "distill-cli[search-postgres]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
}


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
