"""`distill export`: parse, call ``commands.export``, render."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from distill_cli.config import ExportOptions, load_step
from distill_cli.errors import UsageError
from distill_cli.options import EXPORT, EXPORT_OPTIONS, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, quiet_libraries


@config_flags(*EXPORT_OPTIONS, model=ExportOptions)
@config_flags(*EXPORT)
def export(
    model: Annotated[
        str, typer.Argument(autocompletion=complete_model, help="Run name, folder, alias or Hub id of a classifier.")
    ],
    config: ConfigOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder (default: <model>-onnx).")] = None,
    fmt: Annotated[
        Literal["onnx", "torch"], typer.Option("--format", help="onnx, or torch (a PyTorch folder).")
    ] = "onnx",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a folder this command exported.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Export a classifier to ONNX (optionally int8), checked against PyTorch on validation queries."""
    cfg, o = load_step(config, "export", overrides, {})  # the Config's keys and export's own options
    quiet_libraries()
    from distill_cli.commands import export as command

    if o.trim_keep is not None and not o.trim_vocab:
        raise UsageError("--trim-keep names texts whose tokens --trim-vocab keeps: pass --trim-vocab too")
    record = command.export(
        cfg, model, output, fmt, o.quantize, o.trim_vocab, overwrite, o.max_accuracy_drop, o.trim_keep
    )
    command.render(record)
    if json_out:
        emit_json(record)
