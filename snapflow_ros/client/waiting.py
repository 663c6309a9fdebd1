"""The one wait of the package: poll a condition until it holds, against a deadline.

Everything that waits for something another process or thread does (a node to appear, a
service reply, a status event, a process's first output) polls a predicate with
:func:`wait_until`. A wait that fails says what it waited for: :class:`WaitTimeout` after the
deadline, :class:`WaitAborted` as soon as the ``alive`` check names a reason that the condition
can no longer come (a watched process died, the user pressed Ctrl-C). Both are
:class:`ClientError`, the error of the package's client. No ROS import: a process launcher or a
test can wait without rclpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Alive = Callable[[], str]
"""Names why a wait cannot succeed any more ('' while all is well)."""


class ClientError(RuntimeError):
    """A node did not answer as asked: a time-out, a refused request, a process that died."""


class WaitTimeout(ClientError):
    """The condition did not hold within the time given."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g} s waiting for {what}")
        self.what = what
        self.timeout = timeout


class WaitAborted(ClientError):
    """The ``alive`` check named a reason to stop waiting (``reason``)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{reason} while waiting for {what}")
        self.what = what
        self.reason = reason


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    alive: Alive | None = None,
    poll: float = 0.02,
) -> Any:
    """Poll ``predicate`` every ``poll`` seconds until it is truthy and return its value.

    ``what`` names the awaited condition in the errors: :class:`WaitTimeout` after ``timeout``
    seconds, :class:`WaitAborted` as soon as ``alive()`` returns a reason (checked after every
    false predicate, so a condition that holds wins over a death reported at the same time).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and (reason := alive()):
            raise WaitAborted(what, reason)
        if time.monotonic() > deadline:
            raise WaitTimeout(what, timeout)
        time.sleep(poll)
