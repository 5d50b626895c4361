"""`distill export`: parse, call ``commands.export``, render."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from distill_cli.config import ExportOptions, load_step
from distill_cli.errors import UsageError
from distill_cli.options import EXPORT, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, quiet_libraries


def help_of(key: str) -> str:
    return ExportOptions.model_fields[key].description


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
    quantize: Annotated[
        Optional[Literal["int8", "none"]], typer.Option("--quantize", help=help_of("quantize"), show_default=False)
    ] = None,
    trim_vocab: Annotated[
        Optional[bool], typer.Option("--trim-vocab/--no-trim-vocab", help=help_of("trim_vocab"), show_default=False)
    ] = None,
    trim_keep: Annotated[
        Optional[Path], typer.Option("--trim-keep", help=help_of("trim_keep"), show_default=False)
    ] = None,
    max_accuracy_drop: Annotated[
        Optional[float],
        typer.Option("--max-accuracy-drop", help=help_of("max_accuracy_drop") + " [default: 1.0]", show_default=False),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a folder this command exported.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Export a classifier to ONNX (optionally int8), checked against PyTorch on validation queries."""
    options = dict(quantize=quantize, trim_vocab=trim_vocab, trim_keep=trim_keep, max_accuracy_drop=max_accuracy_drop)
    cfg, o = load_step(config, "export", {**overrides, **options}, {})
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
