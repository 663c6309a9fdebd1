"""Errors the runtime raises, each with a message that says what to fix.

Every one is a :class:`PolicyRuntimeError`, itself a ``ValueError``: callers that cannot
import the runtime (the torch-free control layer) catch them as ``ValueError``.
"""


class PolicyRuntimeError(ValueError):
    """Base of the runtime's errors: a checkpoint, an observation or an output it cannot use."""


class CheckpointError(PolicyRuntimeError):
    """A checkpoint is missing, corrupt, of an unsupported type, or did not load completely."""


class ObservationError(PolicyRuntimeError):
    """An observation does not match what the policy expects (keys, shapes, dtypes, values)."""


class NonFiniteOutputError(PolicyRuntimeError):
    """The policy produced NaN/inf actions for a valid observation: the policy (its weights,
    its numerics), not the observation, is at fault.

    ``code`` is the reason code the policy node reports for it in its ``rejected`` status event
    and its fault (:data:`snapflow_ros.control.controller.NON_FINITE_OUTPUT`: the control layer
    imports no runtime, so it tells this error apart by its code).
    """

    code = "non_finite_output"
