"""Checkpoints of a LeRobotDataset being recorded, and the roll-back after a hard kill.

LeRobot writes a recording's frames and episode records through parquet writers that are
closed (footers written) only by ``finalize()``; a process killed hard (SIGKILL, out of
memory, power loss) between two finalizations leaves files without footers and a
``meta/info.json`` counting episodes that cannot be read. After ``finalize()``, the data and
episode files already written are never modified again (a resumed recording opens new files);
only ``meta/info.json``, ``meta/stats.json`` and ``meta/tasks.parquet`` are rewritten.

So a checkpoint (one JSON file, replaced atomically) records, right after a finalization, the
size of every content file and a copy of those three metadata files. :func:`roll_back` returns
a dataset to its last checkpoint: files written since are deleted, the metadata files restored.
What was recorded after the checkpoint is lost, nothing before it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

CHECKPOINT_FILE = "meta/snapflow_checkpoint.json"
REWRITTEN = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")
CONTENT_DIRS = ("data", "meta/episodes", "videos", "images")


class CheckpointError(RuntimeError):
    """A dataset cannot be returned to its last checkpoint; the message says why."""


def content_files(root: Path) -> dict[str, int]:
    """Relative path -> size of every file in the dataset's content folders."""
    files: dict[str, int] = {}
    for folder in CONTENT_DIRS:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    files[path.relative_to(root).as_posix()] = path.stat().st_size
    return files


def save_checkpoint(root: Path, episodes: int) -> None:
    """Record the finalized dataset at ``root`` (holding ``episodes`` episodes)."""
    state = {
        "episodes": int(episodes),
        "files": content_files(root),
        "rewritten": {
            name: base64.b64encode((root / name).read_bytes()).decode()
            for name in REWRITTEN
            if (root / name).is_file()
        },
    }
    path = root / CHECKPOINT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def load_checkpoint(root: Path) -> dict | None:
    """The last checkpoint of ``root`` (None: there is none)."""
    path = root / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        state["episodes"] = int(state["episodes"])
        if not isinstance(state["files"], dict) or not isinstance(state["rewritten"], dict):
            raise TypeError("'files' and 'rewritten' must be objects")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is unreadable ({exc})") from exc
    return state


def matches_checkpoint(root: Path, state: dict) -> bool:
    """True when ``root`` is exactly as it was at checkpoint ``state``."""
    if content_files(root) != state["files"]:
        return False
    for name in REWRITTEN:
        path = root / name
        saved = state["rewritten"].get(name)
        if (saved is None) != (not path.is_file()):
            return False
        if saved is not None and base64.b64decode(saved) != path.read_bytes():
            return False
    return True


def roll_back(root: Path, state: dict) -> list[str]:
    """Return ``root`` to checkpoint ``state``; the paths deleted (relative).

    Raises :class:`CheckpointError` (and changes nothing) when a file of the checkpoint is
    missing or has another size: the dataset was changed by something else than a recording
    that was cut short, and only the user can tell what to keep.
    """
    current = content_files(root)
    for name, size in state["files"].items():
        if current.get(name) != size:
            now = "missing" if name not in current else f"{current[name]} bytes"
            raise CheckpointError(
                f"{name} was {size} bytes at the last checkpoint and is {now} now: not a "
                "recording cut short; restore a copy or delete the folder"
            )
    deleted = [name for name in current if name not in state["files"]]
    for name in deleted:
        (root / name).unlink()
    for name in REWRITTEN:
        saved = state["rewritten"].get(name)
        if saved is not None:
            (root / name).write_bytes(base64.b64decode(saved))
        elif (root / name).is_file():
            (root / name).unlink()
    for folder in CONTENT_DIRS:  # empty folders left by deleted files
        base = root / folder
        if base.is_dir():
            for path in [*sorted(base.rglob("*"), reverse=True), base]:
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
    return deleted
