"""`distill finetune` and `distill distill`: parse, call ``commands.train``, render."""

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from distill_cli.config import load_config
from distill_cli.options import DISTILL, TRAIN, ConfigOpt, JsonOpt, config_flags
from distill_cli.ui import emit_json, quiet_libraries

ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")]
RunOutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder (instead of --name).")]


def _training_command(name: str, keys: tuple[str, ...], doc: str):
    """``finetune`` or ``distill``: the same options, the same core call."""

    @config_flags(*keys)
    def run(
        config: ConfigOpt = None,
        output: RunOutputOpt = None,
        resume: ResumeOpt = False,
        overwrite: OverwriteOpt = False,
        json_out: JsonOpt = False,
        **overrides,
    ) -> None:
        cfg = load_config(config, name, {**overrides, "output": output})
        quiet_libraries()
        from distill_cli.commands import train

        record = train.train(cfg, name, resume=resume, overwrite=overwrite)
        if record.world_size > 1 and os.environ.get("RANK", "0") != "0":
            return  # rank 0 alone prints
        train.render(record)
        if json_out:
            emit_json(train.summary(record))

    run.__doc__ = doc
    return run


finetune = _training_command(
    "finetune", TRAIN, "Fine-tune a model on the labels alone (alpha 1): a teacher, or a student baseline."
)
distill = _training_command("distill", DISTILL, "Train a student to match a teacher's predictions and the labels.")
