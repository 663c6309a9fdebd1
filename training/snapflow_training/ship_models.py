"""Copy a trained teacher and its SnapFlow student into the package, with a manifest.

The shipped policies (``libero:teacher``, ``libero:snapflow``; see
:mod:`snapflow_ros.policies`) live in ``snapflow_ros/models/<name>/``::

    teacher/         the lerobot-train checkpoint (with its vlm/ folder)
    snapflow/        the distilled student (snapflow.json, target-time embedding, vlm/)
    manifest.json    where they came from: dataset hash, commands, seeds, sizes, sha256 of
                     every file, and the measured metrics given with ``--metrics``

Only the files the runtime loads are copied (no optimizer state, no training logs). The
package size limit (``--max-mb``, default 25 MB for both) is checked before anything is
written. ``scripts/libero_proof.sh`` runs this as its ``ship`` stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parents[2] / "snapflow_ros" / "models"
SKIP = {"train_config.json", "training_state", "README.md"}
MAX_MB = 25.0


def _files(folder: Path) -> list[Path]:
    """The files of a checkpoint folder that are shipped (sorted, relative)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in SKIP:
            out.append(rel)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source: Path, dest: Path) -> dict[str, str]:
    """Copy the shipped files of ``source`` into ``dest``; returns {file: sha256}."""
    staging = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    hashes = {}
    for rel in _files(source):
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)
        hashes[str(rel)] = _sha256(target)
    config = staging / "config.json"
    if config.is_file():  # the folder's own vlm/ is found by the runtime; no absolute path
        data = json.loads(config.read_text())
        if "vlm_model_name" in data and (staging / "vlm").is_dir():
            data["vlm_model_name"] = "vlm"
            config.write_text(json.dumps(data, indent=4))
            hashes["config.json"] = _sha256(config)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return hashes


def size_mb(*folders: Path) -> float:
    """Total size of the shipped files of ``folders`` in MB."""
    return sum((f / rel).stat().st_size for f in folders for rel in _files(f)) / 1e6


def ship(
    name: str,
    teacher: Path,
    student: Path,
    provenance: dict[str, Any],
    models_dir: Path = MODELS_DIR,
    max_mb: float = MAX_MB,
) -> Path:
    """Copy ``teacher`` and ``student`` to ``models_dir/name`` and write ``manifest.json``."""
    for folder, what in ((teacher, "teacher"), (student, "student")):
        if not (folder / "model.safetensors").is_file():
            raise ValueError(f"{what} {folder} has no model.safetensors")
    if not (student / "snapflow.json").is_file():
        raise ValueError(f"student {student} is not a SnapFlow checkpoint (no snapflow.json)")
    total = size_mb(teacher, student)
    if total > max_mb:
        raise ValueError(f"teacher + student are {total:.1f} MB, more than --max-mb {max_mb}")
    out = models_dir / name
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": name,
        "policies": {
            "teacher": {"folder": "teacher", "files": _copy(teacher, out / "teacher")},
            "snapflow": {"folder": "snapflow", "files": _copy(student, out / "snapflow")},
        },
        "size_mb": round(total, 2),
        **provenance,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m snapflow_training.ship_models",
        description="Copy a teacher and its SnapFlow student into snapflow_ros/models/NAME "
        "with a manifest (provenance and metrics).",
    )
    p.add_argument("--name", required=True, help="folder under snapflow_ros/models")
    p.add_argument("--teacher", required=True, type=Path, help="teacher checkpoint folder")
    p.add_argument("--student", required=True, type=Path, help="SnapFlow checkpoint folder")
    p.add_argument("--dataset", type=Path, help="demonstration dataset (its hash is recorded)")
    p.add_argument(
        "--provenance", type=Path, help="JSON file merged into the manifest (commands, seeds)"
    )
    p.add_argument("--metrics", type=Path, action="append", default=[], help="JSON results")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--max-mb", type=float, default=MAX_MB)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 2 on bad arguments or inputs."""
    args = build_parser().parse_args(argv)
    provenance: dict[str, Any] = {}
    try:
        if args.provenance is not None:
            provenance.update(json.loads(args.provenance.read_text()))
        if args.dataset is not None:
            from snapflow_ros.training_data.demonstrations import dataset_hash

            provenance["dataset_sha256"] = dataset_hash(args.dataset)
        metrics = {}
        for path in args.metrics:
            metrics[path.name] = json.loads(path.read_text())
        if metrics:
            provenance["metrics"] = metrics
        out = ship(args.name, args.teacher, args.student, provenance, args.models_dir, args.max_mb)
    except (OSError, ValueError) as exc:
        print(f"ship_models: {exc}", file=sys.stderr)
        return 2
    print(f"ship_models: wrote {out} ({provenance.get('dataset_sha256', 'no dataset hash')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
