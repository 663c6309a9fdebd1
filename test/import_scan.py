"""Static check that a source layer does not import what it must not depend on."""

from __future__ import annotations

import ast
from pathlib import Path


def forbidden_imports(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for every import below ``folder`` that starts with one of ``forbidden``."""
    offenders = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path}: {n}" for n in names if n.startswith(forbidden)]
    return offenders
