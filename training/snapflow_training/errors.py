"""Errors of the distillation that the command line reports as one line (exit code 2)."""


class DistillError(ValueError):
    """A bad input (dataset, policy, output folder, option value): the message says what to fix."""
