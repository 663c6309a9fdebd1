"""How every benchmark hands over its result: a markdown table printed, JSON written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def emit(report: dict[str, Any], text: str, out: str | Path | None) -> None:
    """Print ``text``; with ``out``, write ``report`` plus ``text`` (key ``markdown``) as JSON."""
    print(text)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**report, "markdown": text}, indent=2))
        print(f"[bench] wrote {path}", file=sys.stderr)
