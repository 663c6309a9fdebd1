"""GPU evidence: every measurement a GPU can show, in priority order, within a time budget.

Usage (normally through ``scripts/gpu_evidence.sh``, which also installs the carried wheels)::

    python -m snapflow_ros.bench.gpu_evidence --device cuda --out "$OUT" --budget-s 480
    python -m snapflow_ros.bench.gpu_evidence --device cpu --dry-run --out /tmp/evidence
    python -m snapflow_ros.bench.gpu_evidence --list

The plan (:mod:`snapflow_ros.bench.evidence_plan`) runs item by item in worker processes
(:mod:`snapflow_ros.bench.evidence_worker`). On a GPU every item gets its own process (a CUDA
error or an out-of-memory state cannot spoil the next item, and its memory peak is its own);
``--isolate none`` (the default of a dry run) runs them all in one process. An item that runs
past its ``max_s`` or past the budget is killed and recorded as ``timeout``; a worker that dies
records its item as ``crashed``; items that no longer fit the budget are ``skipped``. After
every item ``gpu_evidence.json`` and ``gpu_evidence.md`` are rewritten in the output folder,
so a run cut short still returns everything measured until then. Exit code 0 when every item
of the plan finished ``ok``, 1 otherwise.

A dry run uses tiny models and minimal repeats through the same code; it runs its workers
with one thread and ``TORCH_COMPILE_DISABLE=1`` (``--compile-in-dry-run`` keeps compilation),
so the compiled engine runs its code path without minutes of CPU compilation.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from snapflow_ros.bench.evidence_plan import (
    EvidenceItem,
    PlanSettings,
    build_plan,
    plan_settings,
    select,
    to_json,
)
from snapflow_ros.bench.evidence_report import write_report
from snapflow_ros.bench.gpu_carry import MANIFEST, WHEEL_DIR
from snapflow_ros.launching import ManagedProcess

WORKER = "snapflow_ros.bench.evidence_worker"
MANIFEST_PATH = Path(__file__).resolve().parents[2] / WHEEL_DIR / MANIFEST
POLL_S = 0.5
KILL_WAIT_S = 60.0  # a killed worker's exit (its process group: what it started too)
SMI_FIELDS = ("name", "driver_version", "memory.total", "power.limit", "clocks.max.sm")


def nvidia_smi() -> dict[str, str] | None:
    """GPU name, driver and limits from ``nvidia-smi`` (None when it is absent or fails)."""
    try:
        query = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        plain = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = query.stdout.strip().splitlines()
    if not gpus:
        return None
    info = dict(zip(SMI_FIELDS, (v.strip() for v in gpus[0].split(",")), strict=False))
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", plain.stdout)
    info["driver_cuda_version"] = cuda.group(1) if cuda else None
    info["gpu_count"] = str(len(gpus))
    return info


class EvidenceRun:
    """The plan's items, their state, the budget and the output folder of one run."""

    def __init__(self, args: argparse.Namespace, settings: PlanSettings, items: list) -> None:
        self.args = args
        self.settings = settings
        self.items: list[EvidenceItem] = items
        self.deadline = args.started_at + args.budget_s
        self.work = Path(tempfile.mkdtemp(prefix="snapflow_evidence_"))
        self.workers = 0
        self.report: dict[str, Any] = {
            "benchmark": "gpu_evidence",
            "dry_run": settings.dry_run,
            "status": "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(args.started_at)),
            "budget_s": args.budget_s,
            "elapsed_s": 0.0,
            "nvidia_smi": nvidia_smi(),
            "prepared": json.loads(MANIFEST_PATH.read_text()) if MANIFEST_PATH.is_file() else None,
            "environment": None,
            "settings": {**asdict(settings), "isolate": args.isolate, "argv": args.argv},
            "items": [{**asdict(i), "status": "pending"} for i in items],
        }
        self.entries = {entry["name"]: entry for entry in self.report["items"]}

    # ------------------------------------------------------------------ state and output
    def left_s(self) -> float:
        """Seconds of budget left before the reserve kept for the final write."""
        return self.deadline - self.args.reserve_s - time.time()

    def update(self, name: str, **fields: Any) -> None:
        """Change an item's entry and rewrite the report."""
        self.entries[name].update(fields)
        self.write()

    def write(self) -> None:
        """Rewrite the JSON and markdown files."""
        self.report["elapsed_s"] = round(time.time() - self.args.started_at, 1)
        write_report(self.args.out, self.report)

    def pending(self) -> list[EvidenceItem]:
        """Items that have not run yet."""
        return [i for i in self.items if self.entries[i.name]["status"] == "pending"]

    # ------------------------------------------------------------------ running
    def run(self) -> int:
        """Run the pending items, worker after worker, until done or out of budget."""
        self.write()
        while pending := self.pending():
            if self.left_s() < self.args.min_start_s:
                for item in pending:
                    self.update(
                        item.name,
                        status="skipped",
                        reason=f"time budget: {max(0.0, self.left_s()):.0f} s left",
                    )
                break
            batch = pending[:1] if self.args.isolate == "item" else pending
            if not self.run_worker(batch):
                for item in self.pending():  # the next worker would fail the same way
                    self.update(
                        item.name,
                        status="failed",
                        reason="not run: a worker exited before its first item",
                    )
                break
        self.report["status"] = "finished"
        self.write()
        statuses = [e["status"] for e in self.report["items"]]
        print(
            f"[evidence] done: {collections.Counter(statuses)}; wrote {self.args.out}",
            file=sys.stderr,
            flush=True,
        )
        return 0 if all(s == "ok" for s in statuses) else 1

    def _worker_env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.settings.dry_run:
            env["OMP_NUM_THREADS"] = "1"  # tiny models: threads only contend on a small machine
            if not self.args.compile_in_dry_run:
                env["TORCH_COMPILE_DISABLE"] = "1"
        return env

    def worker_command(self, plan: Path, results: Path) -> list[str]:
        """The command line of one worker process."""
        return [sys.executable, "-m", WORKER, "--plan", str(plan), "--results", str(results)]

    def run_worker(self, batch: list[EvidenceItem]) -> bool:
        """Run ``batch`` in one worker process; False when the worker could not start an item."""
        self.workers += 1
        plan = self.work / f"plan_{self.workers}.json"
        results = self.work / f"results_{self.workers}.jsonl"
        plan.write_text(json.dumps(to_json(self.settings, batch)))
        results.touch()
        # its output is copied to ours (the shell script logs it); the last lines are kept
        proc = ManagedProcess(
            "worker",
            self.worker_command(plan, results),
            self._worker_env(),
            capture=True,
            echo=True,
            keep_lines=60,
        )
        by_name = {i.name: i for i in batch}
        started_any, current, since, offset = False, None, 0.0, 0
        while True:
            exited = not proc.alive()
            lines, offset = _read_new(results, offset)
            for event in lines:
                if event["event"] == "env" and self.report["environment"] is None:
                    self.report["environment"] = event["env"]
                elif event["event"] == "start":
                    started_any, current, since = True, event["item"], time.time()
                    self.update(current, status="running")
                elif event["event"] == "done":
                    self.update(event["item"], **event["result"])
                    current = None
            if exited:
                break
            limit = self.deadline - self.args.reserve_s
            if current is not None:
                limit = min(limit, since + by_name[current].max_s)
            if time.time() > limit:
                proc.stop(signal.SIGKILL, KILL_WAIT_S, escalate=())  # and all it started
                if current is not None:
                    self.update(
                        current,
                        status="timeout",
                        seconds=round(time.time() - since, 1),
                        reason=f"killed after {time.time() - since:.0f} s",
                        output_tail=proc.log()[-3000:],
                    )
                return True
            time.sleep(POLL_S)
        code = proc.wait()  # (its output complete)
        if current is not None:
            self.update(
                current,
                status="crashed",
                reason=f"worker exit code {code}",
                output_tail=proc.log()[-3000:],
            )
        if not started_any:
            for item in batch:
                self.update(
                    item.name,
                    status="failed",
                    reason=f"worker exited with code {code} before its first item",
                    output_tail=proc.log()[-3000:],
                )
            return False
        return True


def _read_new(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines appended to ``path`` since ``offset``."""
    with path.open() as fh:
        fh.seek(offset)
        text = fh.read()
    complete = text[: text.rfind("\n") + 1]
    events = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return events, offset + len(complete.encode())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(
        prog="python -m snapflow_ros.bench.gpu_evidence",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--dry-run", action="store_true", help="tiny models, minimal repeats")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $OUT, else artifacts/gpu_evidence)",
    )
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-time budget of the run")
    p.add_argument(
        "--started-at",
        type=float,
        default=None,
        help="epoch seconds the budget counts from (default: now)",
    )
    p.add_argument(
        "--reserve-s",
        type=float,
        default=10.0,
        help="seconds kept at the end of the budget for writing",
    )
    p.add_argument(
        "--min-start-s",
        type=float,
        default=None,
        help="do not start an item with less budget left (default 30, dry run 0)",
    )
    p.add_argument("--items", default="", help="comma list of item names (default: all, in order)")
    p.add_argument(
        "--isolate",
        choices=("item", "none"),
        default=None,
        help="one process per item (default on a GPU) or one for all (dry run)",
    )
    p.add_argument(
        "--compile-in-dry-run",
        action="store_true",
        help="really compile in a dry run (minutes on a CPU)",
    )
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.device != "cpu" and not args.device.startswith("cuda"):
        p.error(f"--device: expected cuda, cuda:N or cpu, got {args.device!r}")
    if args.budget_s <= 0 or args.reserve_s < 0:
        p.error("--budget-s must be > 0 and --reserve-s >= 0")
    args.names = [n for n in args.items.split(",") if n]
    try:
        select(build_plan(), args.names)
    except ValueError as exc:
        p.error(f"--items: {exc}")
    if args.out is None:
        args.out = Path(os.environ.get("OUT") or "artifacts/gpu_evidence")
    if args.started_at is None:
        args.started_at = time.time()
    if args.isolate is None:
        args.isolate = "none" if args.dry_run else "item"
    if args.min_start_s is None:
        args.min_start_s = 0.0 if args.dry_run else 30.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the plan (or print it with ``--list``)."""
    args = parse_args(argv)
    settings = plan_settings(args.device, args.dry_run)
    items = select(build_plan(), args.names)
    if args.list:
        for item in items:
            print(f"{item.name:36s} {item.kind:8s} max {item.max_s:.0f} s")
        return 0
    return EvidenceRun(args, settings, items).run()


if __name__ == "__main__":
    sys.exit(main())
