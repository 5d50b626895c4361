"""`distill prepare`: parse, call ``commands.prepare``, render."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from distill_cli.config import load_config
from distill_cli.options import PREPARE, ConfigOpt, JsonOpt, config_flags
from distill_cli.ui import emit_json, info, quiet_libraries


@config_flags(*PREPARE)
def prepare(
    config: ConfigOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to write (default: cache).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different dataset in --output.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Read a dataset, name its labels, split and tokenize it for the student, and save it."""
    cfg = load_config(config, "prepare", overrides)
    quiet_libraries()
    from distill_cli.commands import prepare as command

    result = command.prepare_command(cfg, output or cfg.output, overwrite)
    m = result.manifest
    splits = ", ".join(f"{k} {v:,}" for k, v in m.splits.items())
    info(f"{'reused' if result.reused else 'prepared'} {result.path}: {splits}; {len(m.labels)} labels")
    if m.setting:
        from distill_cli.data.columns import describe_setting

        info(describe_setting(m.setting, m.oos_label or cfg.oos_label))
    if shape := m.describe_shape():
        info(shape)
    if json_out:
        emit_json(command.summary(result))
