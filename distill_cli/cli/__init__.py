"""The ``distill`` command line: a thin registry of the commands (one module each in this package, which
parses, calls the core in ``distill_cli.commands`` and renders) and the mapping of errors to exit codes.
Nothing heavy is imported at module level, so ``distill --help`` stays fast; torch and transformers load
inside the commands. No ``from __future__ import annotations`` in this package: typer reads the
``Annotated`` options at run time, and string annotations turn ``--json`` into ``--json-out``."""

import os
import re
import sys
import traceback
from typing import Annotated

import typer

try:  # typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import UsageError as ClickUsageError

from distill_cli import __version__
from distill_cli.cli import config, evaluate, export, predict, prepare, push, run, search, train
from distill_cli.config import COMMANDS, Config
from distill_cli.errors import DistillError, Interrupted
from distill_cli.ui import console, error

app = typer.Typer(
    name="distill",
    help="Distill intent classifiers: fine-tune a teacher, distill a small fast student, measure it, publish it.",
    add_completion=True,  # distill --install-completion (bash, zsh, fish); run names complete from the runs folder
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


# One module per command; the config's command list says which, and in what order.
REGISTRY = {
    "prepare": prepare.prepare,
    "finetune": train.finetune,
    "distill": train.distill,
    "search": search.search,
    "evaluate": evaluate.evaluate,
    "export": export.export,
    "predict": predict.predict,
    "push": push.push,
}
for _name in COMMANDS:
    app.command(_name)(REGISTRY[_name])
app.command("run")(run.run)  # every step above, in one folder
config_app.command("show")(config.config_show)


# typer's words for a value outside a Literal's choices, said as every other flag error of this tool is.
NOT_A_CHOICE = re.compile(
    r"^Invalid value for '(?P<flag>[^']+)': Value error, '(?P<value>.*)' is not one of (?P<all>.+)\.$"
)


def usage_message(message: str) -> str:
    """``--pooling max: expected auto, cls or mean`` for typer's message about a choice; others as they are."""
    found = NOT_A_CHOICE.match(message.strip())
    if found is None:
        return message
    choices = [c.strip().strip("'") for c in found["all"].split(",")]
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    key = found["flag"].removeprefix("--").replace("-", "_")
    also = f" (config key {key})" if key in Config.model_fields else ""
    return f"{found['flag']} {found['value']}: expected {listed}{also}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per error on stderr, exit 2 for bad usage, 1 for failures."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DISTILL_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="distill", standalone_mode=False)
    except ClickUsageError as err:
        where = f"({err.ctx.command_path}) " if err.ctx is not None else ""
        error(f"{where}{usage_message(err.format_message())}".replace("\n", " "))
        code = 2
    except DistillError as err:
        if debug:
            traceback.print_exc()
        error(f"{err}; {err.resume_hint(args)}" if isinstance(err, Interrupted) else str(err))
        code = err.exit_code
    except (KeyboardInterrupt, typer.Abort):
        console.print("[red]interrupted[/]")
        code = 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        error(f"{type(err).__name__}: {err} (run with --debug for the traceback)".replace("\n", " "))
        code = 1
    sys.exit(code or 0)
