"""What a piece of code imports, measured in a fresh Python interpreter (the suite's own
process has imported everything already), and whether it runs with some packages unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable


def modules_loaded(setup: str, roots: Iterable[str], timeout: float = 120.0) -> list[str]:
    """Run ``setup`` (Python source) in a fresh interpreter, then return, sorted, the loaded
    modules whose top-level package is one of ``roots``. AssertionError (with the child's
    stderr) when the code fails."""
    code = (
        f"{setup}\n"
        "import sys\n"
        f"roots = {tuple(roots)!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in roots))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def run_without(setup: str, blocked: Iterable[str], timeout: float = 120.0) -> str:
    """Run ``setup`` in a fresh interpreter in which every module of ``blocked`` is
    unimportable (importing one raises ImportError); return its stdout. AssertionError (with
    the child's stderr) when the code fails."""
    code = f"import sys\nfor name in {tuple(blocked)!r}:\n    sys.modules[name] = None\n{setup}\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
