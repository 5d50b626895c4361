"""The two kinds of failure the CLI reports, each with its exit code (see the README's contract)."""


class DistillError(Exception):
    """A run that failed for a reason the user can act on; exit code 1."""

    exit_code = 1


class UsageError(DistillError):
    """Bad usage or bad input (flag, config key, data file); exit code 2."""

    exit_code = 2
