"""`distill config show`: the effective configuration as YAML."""

from typing import Annotated, Optional

import typer

from distill_cli.config import COMMANDS, load_config
from distill_cli.errors import UsageError
from distill_cli.options import DISTILL, ConfigOpt, config_flags


@config_flags(*DISTILL)
def config_show(
    config: ConfigOpt = None,
    command: Annotated[Optional[str], typer.Option("--command", help="Apply this command's config section.")] = None,
    **overrides,
) -> None:
    """Print the effective configuration (defaults < file < file section < flags) as YAML."""
    if command is not None and command not in COMMANDS:
        raise UsageError(f"--command {command}: expected {', '.join(COMMANDS[:-1])} or {COMMANDS[-1]}")
    typer.echo(load_config(config, command, overrides).to_yaml(), nl=False)
