"""A pytest session of its own, on a test file a test writes, with this suite's conftest.

For tests of the suite's own machinery (per-test timeouts, failures off the test's thread):
what they check is how a whole pytest run reports, so the run happens in a child process and
its output is read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INNER_FILE = "test_inner.py"


@dataclass
class InnerRun:
    """What the inner session did: its exit status, its stdout and stderr together, and how
    long it took (s)."""

    returncode: int
    output: str
    seconds: float

    @property
    def summary(self) -> str:
        """The last line pytest printed ("1 failed, 2 passed in ...")."""
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""


def run_inner(tmp_path: Path, source: str, *options: str, timeout: float = 120.0) -> InnerRun:
    """Run ``source`` as ``tmp_path/test_inner.py`` in a pytest session with this suite's
    conftest (``-p test.conftest``; ``options`` added to the command line); fails with
    ``subprocess.TimeoutExpired`` after ``timeout`` s."""
    (tmp_path / INNER_FILE).write_text(source)
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "test.conftest",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            *options,
            INNER_FILE,
        ],  # fmt: skip
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return InnerRun(done.returncode, done.stdout + done.stderr, time.monotonic() - start)
