"""The kinds of failure the CLI reports, each with its exit code (see the README's contract)."""

from __future__ import annotations

import shlex
from pathlib import Path


class DistillError(Exception):
    """A run that failed for a reason the user can act on; exit code 1."""

    exit_code = 1


class UsageError(DistillError):
    """Bad usage or bad input (flag, config key, data file); exit code 2."""

    exit_code = 2


class Interrupted(DistillError):
    """Training stopped by a signal after saving a checkpoint; exit 128 + signal number.

    It carries what the CLI needs to print the command that resumes: the run name to pass again when the
    name was generated (it holds a timestamp), else None.
    """

    def __init__(self, checkpoint_dir: Path, signum: int, generated_name: str | None = None):
        super().__init__(f"interrupted: checkpoint saved under {checkpoint_dir}")
        self.exit_code = 128 + signum
        self.generated_name = generated_name

    def resume_hint(self, args: list[str]) -> str:
        """The command line as typed (``args``), with ``--resume`` and the generated run name if any."""
        again = args + (["--name", self.generated_name] if self.generated_name else [])
        again = [a for a in again if a not in ("--resume", "--overwrite")] + ["--resume"]
        return f"resume with: distill {shlex.join(again)}"


class StudyInterrupted(Interrupted):
    """``distill search`` stopped by a signal between trials: the study is intact, and the same command,
    typed again, continues it."""

    def __init__(self, study: str, trials_done: int, signum: int):
        DistillError.__init__(self, f"interrupted after {trials_done} trial(s): study {study} is intact")
        self.exit_code = 128 + signum

    def resume_hint(self, args: list[str]) -> str:
        return f"continue it with: distill {shlex.join(args)}"
