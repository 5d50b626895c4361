"""`distill export`: parse, call ``commands.export``, render."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from distill_cli.config import DEFAULT_MAX_ACCURACY_DROP, load_config
from distill_cli.errors import UsageError
from distill_cli.options import EXPORT, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, quiet_libraries


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
        Literal["int8", "none"], typer.Option("--quantize", help="int8: dynamic int8 weights; none: fp32.")
    ] = "none",
    trim_vocab: Annotated[
        bool, typer.Option("--trim-vocab", help="Keep only the tokens of the training split and single characters.")
    ] = False,
    trim_keep: Annotated[
        Optional[Path],
        typer.Option(
            "--trim-keep",
            help="With --trim-vocab, also keep the tokens of these texts (.txt one a line, or a text column).",
        ),
    ] = None,
    max_accuracy_drop: Annotated[
        float,
        typer.Option("--max-accuracy-drop", help="Gate: validation points int8 or trimming may lose (each)."),
    ] = DEFAULT_MAX_ACCURACY_DROP,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a folder this command exported.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Export a classifier to ONNX (optionally int8), checked against PyTorch on validation queries."""
    cfg = load_config(config, "export", overrides)
    quiet_libraries()
    from distill_cli.commands import export as command

    if trim_keep is not None and not trim_vocab:
        raise UsageError("--trim-keep names texts whose tokens --trim-vocab keeps: pass --trim-vocab too")
    record = command.export(cfg, model, output, fmt, quantize, trim_vocab, overwrite, max_accuracy_drop, trim_keep)
    command.render(record)
    if json_out:
        emit_json(record)
