"""`distill predict`: parse, call ``commands.predict``, render."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from distill_cli.config import load_config
from distill_cli.options import PREDICT, ConfigOpt, complete_model, config_flags
from distill_cli.ui import quiet_libraries


@config_flags(*PREDICT)
def predict(
    model: Annotated[str, typer.Argument(autocompletion=complete_model, help="Run name, folder, alias or Hub id.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts; else --file, else stdin (one a line).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Texts, one per line ('-': stdin).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Show the N most likely intents.")] = 1,
    config: ConfigOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a text on stdout (JSON lines).")] = False,
    **overrides,
) -> None:
    """Classify texts: the intent, its probability and the out-of-scope decision. Lines from a file or a pipe
    are answered as they come, a small batch at a time."""
    cfg = load_config(config, "predict", overrides)
    from distill_cli.commands import predict as command

    source = command.text_source(texts or [], file)  # bad input is refused before a model is loaded
    quiet_libraries()
    command.answer_all(command.Predictor.load(cfg, model), source, top_k, json_out)
