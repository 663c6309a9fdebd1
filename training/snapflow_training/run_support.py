"""Plumbing of a distillation run: accelerator, precision, seeding, signals, logs."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_training.errors import DistillError

LOG = logging.getLogger(__name__)
LOG_FILE = "train_log.jsonl"


def make_accelerator(device: str, find_unused: bool):
    """An ``accelerate.Accelerator`` (plain single process unless started by accelerate)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DistillError(f"--device {device} requested but CUDA is not available")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))
    return Accelerator(
        cpu=cpu,
        mixed_precision="no",  # autocast is ours (bf16 needs no grad scaler)
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused)],
    )


def autocast_factory(device: torch.device, dtype: str) -> Callable[[], Any]:
    """A context-manager factory: bf16 autocast or nothing."""
    if dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_generator(generator: torch.Generator, seed: int, step: int) -> None:
    """Re-seed the noise generator from (seed, step), the same on every process.

    Each process draws the noise and times of the whole global batch and keeps its slice
    (``DistillModule.shard``). The middle 0 of the seed sequence keeps the stream of runs made
    when it held the process rank (single-process runs reproduce them bit for bit).
    """
    value = np.random.SeedSequence([seed, 0, step]).generate_state(1, dtype=np.uint64)[0]
    generator.manual_seed(int(value))


def sum_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``tensor`` over all processes of the process group (a copy)."""
    import torch.distributed as dist

    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


# Set by a launcher for the processes it starts; a single process with them was meant to have
# company (``accelerate launch --num_processes N`` without a multi-process mode starts one
# process, only setting the rendezvous address).
LAUNCHER_VARIABLES = ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def describe_processes(accelerator: Any, batch_size: int) -> str:
    """One line: how many processes run, in which mode, and the batch per step."""
    n = accelerator.num_processes
    if n == 1:
        return (
            f"running as 1 process on {accelerator.device} (not distributed): "
            f"batch {batch_size} per step"
        )
    mode = getattr(accelerator.distributed_type, "value", str(accelerator.distributed_type))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        mode += f", {dist.get_backend()} backend"
    return (
        f"running as {n} processes ({mode}; the main one on {accelerator.device}): "
        f"batch {batch_size} per process = {batch_size * n} per step"
    )


def launcher_mismatch(accelerator: Any, environ: dict[str, str]) -> str | None:
    """A warning when a multi-process launcher started this program but it runs alone."""
    if accelerator.num_processes > 1:
        return None
    requested = environ.get("WORLD_SIZE")
    if requested is not None and requested.strip() == "1":
        return None  # e.g. torchrun --nproc-per-node 1: alone on purpose
    found = [name for name in LAUNCHER_VARIABLES if name in environ]
    if not found:
        return None
    hint = ""
    if "ACCELERATE_USE_CPU" in environ:
        hint = (
            " `accelerate launch` starts a single process unless a multi-process mode is "
            "chosen (--cpu always runs one): use `accelerate launch --multi_gpu "
            "--num_processes N ... --device cpu` or `torchrun --standalone --nproc-per-node N` "
            "for N CPU processes (docs/distillation.md, Multi-process)."
        )
    return (
        f"started by a multi-process launcher ({', '.join(found)} set"
        + (f", WORLD_SIZE={requested}" if requested is not None else "")
        + ") but running as ONE process: the batch per step is --batch-size, not "
        "processes x --batch-size." + hint
    )


def quiet_unless_main(accelerator: Any) -> None:
    """On processes other than the main one, silence log records below ERROR and warnings."""
    if accelerator.is_main_process:
        return
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")


class StopFlag:
    """Set by SIGINT / SIGTERM: the loop finishes its step, checkpoints and exits."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        LOG.warning("signal %d: stopping after this step (checkpoint first)", signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _read_log(path: Path, up_to: int) -> list[str]:
    if not path.is_file():
        return []
    return [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= up_to
    ]


class RunLog:
    """JSONL log (+ TensorBoard when importable) of the main process."""

    def __init__(self, output: Path, enabled: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = output / LOG_FILE
        self.tb = None
        if not enabled:
            return
        if resume_step is not None:  # drop lines written after the checkpoint we resume from
            kept = _read_log(self.path, resume_step)
            self.path.write_text("".join(line + "\n" for line in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(output / "tensorboard"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step" and value == value:
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run evaluation without touching any random state training depends on."""
    py, npy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def free_memory(*objs: Any) -> None:
    del objs
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
