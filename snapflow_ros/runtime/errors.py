"""Errors the runtime raises, each with a message that says what to fix."""


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of an unsupported type, or did not load completely."""


class ObservationError(ValueError):
    """An observation does not match what the policy expects (keys, shapes, dtypes, values)."""
