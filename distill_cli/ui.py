"""Output: everything for people goes to stderr through rich; ``--json`` puts one object on stdout."""

from __future__ import annotations

import json
import math
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from distill_cli.hub import redact_urls

console = Console(stderr=True, highlight=False)


def emit_json(obj: dict) -> None:
    """One JSON object on stdout. A NaN or infinity (a diverged run) is written as null: strict JSON."""
    sys.stdout.write(json.dumps(finite(obj), default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def finite(value):
    """``value`` with every non-finite float replaced by None, in nested dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def quiet_libraries() -> None:
    """Our own progress replaces tqdm bars and library chatter."""
    import logging
    import os

    import datasets
    import transformers

    os.environ.setdefault("TQDM_DISABLE", "1")  # bars of other libraries (model2vec's distillation)
    logging.getLogger("model2vec").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(redact_urls(message))}", soft_wrap=True)


def info(message: str) -> None:
    console.print(escape(redact_urls(message)), soft_wrap=True)


def error(message: str) -> None:
    """The one line a failure prints (no URL password in it, whatever library wrote the message)."""
    console.print(f"[red]error:[/] {escape(redact_urls(message))}", soft_wrap=True)


class Bar:
    """A rich progress bar on a terminal; plain periodic lines (no control codes) elsewhere, e.g. CI."""

    def __init__(self, description: str, total: int, every_s: float = 10.0, quiet: bool = False):
        self.description, self.total, self.every_s, self.quiet = description, max(total, 1), every_s, quiet
        self.done, self.fields, self._last = 0, "", 0.0
        self.start = time.perf_counter()
        self.progress = None
        if console.is_terminal and not quiet:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self.task = self.progress.add_task(description, total=self.total, info="")
            self.progress.start()

    def update(self, done: int, fields: str = "") -> None:
        self.done, self.fields = done, fields
        if self.progress is not None:
            self.progress.update(self.task, completed=done, info=fields)
            return
        if self.quiet:
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s or done >= self.total:
            self._last = now
            elapsed = now - self.start
            eta = elapsed / done * (self.total - done) if done else 0.0
            console.print(f"{self.description} {done}/{self.total} {fields} eta {eta:.0f}s", soft_wrap=True)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n, self.fields)

    def log(self, message: str) -> None:
        (self.progress.console if self.progress is not None else console).print(message, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
