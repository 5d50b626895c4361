"""The ``search:`` section of a config: what ``distill search`` varies, and how the study runs.

Each searched setting is a ``[low, high]`` range of the config key of the same name, the learning rate on a
log scale; a key set to ``null`` is not searched, and its config value stands. The default space is the
book's (epochs 5-10, alpha 0-1, temperature 2-20) plus the learning rate. Every setting that is not
searched comes from the config's top level, its ``distill:`` section and the flags, as for
``distill distill``. Nothing here imports optuna: a bad space is refused before anything heavy loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from distill_cli.config import Config, describe_validation_error, read_yaml
from distill_cli.errors import UsageError

# Searchable config keys: (integer?, log scale?)
SEARCHABLE = {
    "alpha": (False, False),
    "temperature": (False, False),
    "epochs": (True, False),
    "learning_rate": (False, True),
    "student_layers": (True, False),
    "weight_decay": (False, False),
    "warmup": (False, False),
}


class SearchSettings(BaseModel):
    """The search space and the study's own settings; flags override the last four."""

    model_config = ConfigDict(extra="forbid")

    alpha: tuple[float, float] | None = (0.0, 1.0)
    temperature: tuple[float, float] | None = (2.0, 20.0)
    epochs: tuple[int, int] | None = (5, 10)
    learning_rate: tuple[float, float] | None = (1e-5, 1e-4)
    student_layers: tuple[int, int] | None = None
    weight_decay: tuple[float, float] | None = None
    warmup: tuple[float, float] | None = None

    trials: PositiveInt = Field(20, description="Trials this invocation adds to the study.")
    timeout: PositiveFloat | None = Field(None, description="Start no trial after this many seconds.")
    storage: str | None = Field(None, description="Optuna RDB URL; default: a journal file in the study folder.")
    pruner: Literal["median", "halving", "none"] = "median"
    startup_trials: NonNegativeInt = Field(5, description="Random trials before TPE models the space.")

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The searched keys and their ranges, in a fixed order."""
        return {k: getattr(self, k) for k in SEARCHABLE if getattr(self, k) is not None}

    def suggest(self, trial) -> dict[str, Any]:
        """This trial's values of the searched keys (``trial`` is an ``optuna.Trial``)."""
        params = {}
        for key, (low, high) in self.ranges().items():
            integer, log = SEARCHABLE[key]
            suggest = trial.suggest_int if integer else trial.suggest_float
            params[key] = suggest(key, low, high, log=log)
        return params


def check_ranges(settings: SearchSettings, where: str) -> None:
    """Every range non-empty, the right way round, and with both ends valid values of its config key."""
    ranges = settings.ranges()
    if not ranges:
        raise UsageError(f"{where}search: nothing to search; give at least one range, e.g. alpha: [0, 1]")
    for key, (low, high) in ranges.items():
        if low > high:
            raise UsageError(f"{where}search.{key}: inverted range [{low}, {high}]; write it low first")
        if low == high:
            raise UsageError(
                f"{where}search.{key}: empty range [{low}, {high}]; to fix {key}, set it in the config instead"
            )
        for bound in (low, high):
            try:
                Config(**{key: bound})
            except ValidationError as err:
                problem = err.errors()[0]["msg"].lower()
                raise UsageError(f"{where}search.{key}: {bound} is not a valid {key}: {problem}") from None


def load_search_settings(path: Path | None, overrides: dict[str, Any]) -> SearchSettings:
    """The ``search:`` section of the config file (defaults without one), then the flags (``None``: not given)."""
    section = read_yaml(path).get("search") if path is not None else None
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise UsageError(f"config {path}: section 'search' must be a mapping of keys to values")
    merged = {**section, **{k: v for k, v in overrides.items() if v is not None}}
    where = f"config {path}: " if path is not None else ""
    try:
        settings = SearchSettings(**merged)
    except ValidationError as err:
        raise UsageError(where + describe_validation_error(err, SearchSettings.model_fields, "search.")) from None
    check_ranges(settings, where)
    return settings
