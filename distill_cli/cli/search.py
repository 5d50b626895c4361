"""`distill search`: parse, call ``commands.search``, render."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from distill_cli.config import load_config
from distill_cli.extras import require
from distill_cli.options import DISTILL, ConfigOpt, JsonOpt, config_flags
from distill_cli.search_space import load_search_settings
from distill_cli.ui import emit_json, info, quiet_libraries


@config_flags(*DISTILL)
def search(
    config: ConfigOpt = None,
    trials: Annotated[Optional[int], typer.Option("--trials", help="Trials to add to the study (default 20).")] = None,
    timeout: Annotated[
        Optional[float], typer.Option("--timeout", help="Start no new trial after this many seconds.")
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option("--storage", help="Optuna RDB URL shared by workers (default: a journal file in the study)."),
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="History and importances PNG (needs matplotlib).")
    ] = None,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Search alpha, temperature, epochs and learning rate on validation with Optuna; the teacher runs once."""
    cfg = load_config(config, "search", overrides)
    settings = load_search_settings(config, {"trials": trials, "timeout": timeout, "storage": storage})
    from distill_cli.commands import search as command
    from distill_cli.commands.search_report import render

    if plot is not None:
        require("matplotlib")
    quiet_libraries()
    # The study's name comes from --name alone: a config's ``name`` is the name of a distill run.
    report = command.search(cfg, settings, overrides.get("name"), plot=plot)
    render(report)
    if plot is not None:
        info(f"plot written to {plot}")
    if json_out:
        emit_json(report)
