"""What travels to the GPU machine with the evidence run, and the check that it fits.

The GPU machine has Python 3.12, torch 2.11 (CUDA), transformers, accelerate, safetensors,
tokenizers and numpy, no lerobot and no network; at most 64 MiB travel with a command (the
working tree plus the carried folders). ``prepare`` (``scripts/gpu_evidence.sh --prepare``)
downloads the wheels of :data:`CARRIED` into ``.whl/`` at the versions installed in the
running interpreter (the project's tested venv), checks one wheel per distribution, writes
``.whl/manifest.json`` (commit, versions, hashes), checks the total size and prints the
device call.

Not carried: the dataset stack (datasets, pyarrow, pandas, PyAV; the evidence run uses an
in-memory batch instead), OpenCV (a 60 MB wheel that LeRobot imports only for GR00T: the
run script puts an import-only stand-in in its place when the machine has none), and docopt
(num2words needs it only for its command-line tool; it has no wheel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

WHEEL_DIR = ".whl"
MANIFEST = "manifest.json"
LIMIT_BYTES = 64 * 2**20
DEVICE_COMMAND = "bash scripts/gpu_evidence.sh"
DEVICE_TIMEOUT_S = 600
# Distributions the code path imports that the GPU image lacks, or has at another version
# than the project runs (transformers 5.5.4 with its tokenizers < 0.23, numpy < 2.3).
CARRIED = (
    "lerobot", "transformers", "tokenizers", "huggingface_hub", "safetensors", "accelerate",
    "numpy", "torchvision", "pillow", "draccus", "mergedeep", "toml", "typing-inspect",
    "mypy-extensions", "einops", "num2words", "gymnasium", "cloudpickle", "farama-notifications",
    "termcolor", "psutil", "requests", "urllib3", "charset-normalizer",
)  # fmt: skip
PLATFORMS = (
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux1_x86_64",
)  # fmt: skip


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(names: tuple[str, ...] = CARRIED) -> dict[str, str]:
    """Versions of ``names`` installed here; raises when one is missing."""
    pins, missing = {}, []
    for name in names:
        try:
            pins[normalize(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(f"not installed in {sys.executable}: {missing} (use the project venv)")
    return pins


def download_command(pins: dict[str, str], dest: Path) -> list[str]:
    """``pip download`` of exactly these wheels for CPython 3.12 on x86_64 Linux."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "-d",
        str(dest),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return cmd + [f"{name}=={version}" for name, version in sorted(pins.items())]


def wheel_identity(filename: str) -> tuple[str, str]:
    """(normalized name, version) of a wheel file name."""
    name, version = filename.split("-")[:2]
    return normalize(name), version


def check_wheels(dest: Path, pins: dict[str, str]) -> list[str]:
    """Problems of ``dest``: a missing, extra, duplicated or wrongly versioned wheel."""
    found: dict[str, list[str]] = {}
    for wheel in sorted(dest.glob("*.whl")):
        name, version = wheel_identity(wheel.name)
        found.setdefault(name, []).append(version)
    problems = [f"two versions of {n}: {v}" for n, v in found.items() if len(v) > 1]
    problems += [f"no wheel for {n}=={v}" for n, v in pins.items() if n not in found]
    problems += [f"unexpected wheel {n} {v}" for n, v in found.items() if n not in pins]
    problems += [
        f"{n} is {found[n][0]}, the project runs {v}"
        for n, v in pins.items()
        if n in found and found[n][0] != v
    ]
    return problems


def working_tree_files(repo: Path) -> list[Path]:
    """Files that travel with every command: tracked and untracked-but-not-ignored."""
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    paths = {repo / p for p in out.decode().split("\0") if p}
    return sorted(p for p in paths if p.is_file() and not p.is_symlink())


def size_bytes(paths: list[Path]) -> int:
    """Total size of ``paths`` (folders counted file by file)."""
    total = 0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def write_manifest(repo: Path, dest: Path) -> dict:
    """Record the commit, the tree state and the wheels (sha256) next to the wheels."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True
        ).stdout.strip()

    manifest = {
        "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_paths": len(git("status", "--porcelain").splitlines()),
        "wheels": {
            w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in sorted(dest.glob("*.whl"))
        },
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def report_size(repo: Path, carried: list[Path]) -> tuple[int, str]:
    """Bytes of tree + carried folders, and a readable account of them."""
    tree = size_bytes(working_tree_files(repo))
    parts = {p.name: size_bytes([p]) for p in carried}
    total = tree + sum(parts.values())
    mib = 2**20
    lines = [f"working tree {tree / mib:.1f} MiB"]
    lines += [f"{name}/ {b / mib:.1f} MiB" for name, b in parts.items()]
    lines.append(f"total {total / mib:.1f} MiB of {LIMIT_BYTES / mib:.0f} MiB")
    return total, "; ".join(lines)


def prepare(repo: Path, download: bool) -> int:
    """Fill (or only check) ``.whl/``, check the size, print the device call."""
    dest = repo / WHEEL_DIR
    pins = pinned_versions()
    if download:
        dest.mkdir(exist_ok=True)
        for wheel in dest.glob("*.whl"):  # keep one version of each: two stop the install
            name, version = wheel_identity(wheel.name)
            if pins.get(name) != version:
                wheel.unlink()
        subprocess.run(download_command(pins, dest), check=True)
    problems = check_wheels(dest, pins) if dest.is_dir() else [f"{dest} does not exist"]
    if problems:
        print("carried wheels do not match:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    manifest = write_manifest(repo, dest)
    total, account = report_size(repo, [dest])
    print(f"[prepare] {len(manifest['wheels'])} wheels in {dest}; {account}")
    if total >= LIMIT_BYTES:
        print("[prepare] too large for one device call", file=sys.stderr)
        return 1
    print("[prepare] device call:")
    print(
        json.dumps(
            {"command": DEVICE_COMMAND, "carry": [WHEEL_DIR], "timeout_s": DEVICE_TIMEOUT_S},
            indent=2,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``prepare`` (download + check) or ``check`` (check only)."""
    p = argparse.ArgumentParser(prog="python -m snapflow_ros.bench.gpu_carry")
    p.add_argument("action", choices=("prepare", "check"))
    p.add_argument("--repo", type=Path, default=Path.cwd())
    args = p.parse_args(argv)
    return prepare(args.repo.resolve(), download=args.action == "prepare")


if __name__ == "__main__":
    sys.exit(main())
