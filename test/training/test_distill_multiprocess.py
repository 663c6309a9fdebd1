"""``distill`` in several processes on the CPU (gloo), and the sharded objective behind it.

The runs use ``torchrun --standalone`` (a free rendezvous port, never a fixed one) with two
processes of one thread each, the tiny SmolVLA and the 4 x 16-frame synthetic dataset
(48 training frames: one epoch is 6 steps of 2 x 4 samples, so 8 steps cross it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from snapflow_training import data
from snapflow_training.checkpointing import CHECKPOINTS_DIR, LAST_LINK, MODEL_DIR, STATE_DIR
from snapflow_training.distill_cli import main
from snapflow_training.objective import BatchShard, SnapFlowConfig, snapflow_loss
from snapflow_training.run_support import sum_across_processes
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset

from test.training import _shard_probe as probe

SPEC = SyntheticSpec(num_episodes=4, episode_length=16, seed=1)
BATCH = 4  # per process
STEPS = 8
LAUNCH_TIMEOUT_S = 600  # one launch takes 15-60 s here, depending on the machine's load
PROBE = Path(__file__).with_name("_shard_probe.py")


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset of test_distill.py (4 episodes x 16 frames, built once per session)."""
    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "synthetic_4x16", SPEC)


def run_args(policy: Path, dataset: Path, output: Path, *extra: str) -> list[str]:
    """distill arguments of the runs compared here (``--batch-size`` comes with ``extra``)."""
    return [
        "--policy", str(policy), "--dataset", str(dataset), "--output", str(output),
        "--steps", str(STEPS), "--eval-episodes", "1", "--eval-interval", "0",
        "--eval-samples", "4", "--eval-batch-size", "4", "--fidelity-frames", "0",
        "--latency-repeats", "0", "--log-interval", "1", "--save-interval", "3",
        "--num-workers", "0", "--warmup-steps", "1", "--lr", "1e-3", "--seed", "3",
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2``; each process's output goes to log_dir."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--log-dir", str(log_dir), "--redirects", "3", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=_env(), check=False
    )


def rank_output(log_dir: Path, rank: int) -> tuple[str, str]:
    """(stdout, stderr) of one process of a torchrun launch."""
    (folder,) = log_dir.glob(f"*/attempt_0/{rank}")
    return (folder / "stdout.log").read_text(), (folder / "stderr.log").read_text()


def distill_2(log_dir: Path, args: list[str]) -> tuple[str, str]:
    """distill in 2 processes; returns the main process's (stdout, stderr)."""
    done = torchrun(log_dir, "-m", "snapflow_training.distill_cli", *args)
    assert done.returncode == 0, (done.stderr[-3000:], rank_output(log_dir, 0)[1][-3000:])
    return rank_output(log_dir, 0)


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(
    tiny_smolvla_dir: Path, dataset_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """2 processes x batch 4: straight, and stopped at 3 + resumed; 1 process x batch 8."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    out = {name: tmp / name for name in ("two", "split", "one")}
    policy = tiny_smolvla_dir
    distill_2(tmp / "log_two", run_args(policy, dataset_root, out["two"], "--batch-size", "4"))
    split = run_args(policy, dataset_root, out["split"], "--batch-size", "4")
    distill_2(tmp / "log_split_a", [*split, "--stop-after", "3"])
    distill_2(tmp / "log_split_b", [*split, "--resume"])
    one = run_args(policy, dataset_root, out["one"], "--batch-size", "8")
    assert main(one) == 0
    return {**out, "logs": tmp}


# --------------------------------------------------------------------------- 2 processes
@pytest.mark.slow
def test_two_processes_write_one_run(runs: dict[str, Path]) -> None:
    """One set of logs and checkpoints (the main process's), one RNG file per process, and
    only the main process prints: its announcement of the process count, its warnings and the
    summary (the dataset's statistics differ from the checkpoint's, so every process meets that
    warning; only one prints it)."""
    run = runs["two"]
    out0, err0 = rank_output(runs["logs"] / "log_two", 0)
    out1, err1 = rank_output(runs["logs"] / "log_two", 1)
    assert "running as 2 processes (MULTI_CPU, gloo backend" in err0
    assert "batch 4 per process = 8 per step" in err0
    assert "normalisation statistics differ widely" in err0
    assert "SnapFlow checkpoint:" in out0 and "training throughput (median)" in out0
    assert out1 == ""
    assert "snapflow_training" not in err1 and "distill" not in err1, err1

    rows = [r for r in log_rows(run) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # written once, not twice
    assert [r["samples_seen"] for r in rows] == [8 * s for s in range(1, STEPS + 1)]
    root = run / CHECKPOINTS_DIR
    assert sorted(p.name for p in root.iterdir()) == [LAST_LINK, "step_00000006", "step_00000008"]
    for step in ("step_00000006", "step_00000008"):
        state = root / step / STATE_DIR
        names = sorted(p.name for p in state.iterdir())
        # shadow.pt: the teacher's trainable weights (--flow-target teacher, the default)
        assert names == [
            "optimizer.pt", "progress.json", "rng_0.pt", "rng_1.pt", "scheduler.pt", "shadow.pt"
        ]  # fmt: skip
        progress = json.loads((state / "progress.json").read_text())
        assert progress["num_processes"] == 2 and progress["batch_size"] == BATCH
    rng = [torch.load(state / f"rng_{r}.pt", weights_only=False) for r in (0, 1)]
    assert not torch.equal(rng[0]["torch"], rng[1]["torch"])  # each process saved its own
    meta = json.loads((run / MODEL_DIR / "snapflow.json").read_text())
    assert meta["settings"]["num_processes"] == 2 and meta["steps_trained"] == STEPS
    assert not list(run.rglob(".tmp-*"))


@pytest.mark.slow
def test_two_process_resume_is_exact(runs: dict[str, Path]) -> None:
    """8 steps straight == 3 steps, stop, resume to 8 (both with 2 processes, across the epoch
    boundary at step 6): byte-identical weights, the same log but for its throughput column."""
    _, err = rank_output(runs["logs"] / "log_split_b", 0)
    assert "resumed from" in err and "at step 3" in err
    for name in ("model.safetensors", "snapflow_target_time.safetensors"):
        a = (runs["two"] / MODEL_DIR / name).read_bytes()
        assert a == (runs["split"] / MODEL_DIR / name).read_bytes(), name

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows]

    assert strip(log_rows(runs["two"])) == strip(log_rows(runs["split"]))


@pytest.mark.slow
def test_two_processes_equal_one_process_with_double_batch(
    runs: dict[str, Path], tiny_smolvla_dir: Path
) -> None:
    """2 processes x batch 4 compute what 1 process x batch 8 computes.

    Each step's global batch is the same 8 frames (the shards of one permutation), every
    process draws the noise and times of the whole global batch from one (seed, step) generator
    and keeps its rows, each loss term is divided by its global element count, and DDP averages
    the gradients. What is left is float summation order (the loss summed in two halves, the
    gradients summed by the all-reduce), so the comparison has a tolerance: every logged loss
    term and gradient norm to 1e-5 relative (measured here: at most 4.1e-7) and the final
    weights to 1e-4 absolute (measured: 5.7e-6; one step at lr 1e-3 moves a weight by up to
    1e-3, and the weights moved by 5.0e-3 from the teacher in these 8 steps).
    A wrong shard, noise or normalisation changes the first step's loss by far more.
    """
    one = [r for r in log_rows(runs["one"]) if "loss" in r]
    two = [r for r in log_rows(runs["two"]) if "loss" in r]
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two, strict=True):
        assert a["samples_seen"] == b["samples_seen"]
        for key in ("loss", "flow_matching", "consistency", "grad_norm", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=0), (a["step"], key)
    teacher = load_file(tiny_smolvla_dir / "model.safetensors")
    a = load_file(runs["one"] / MODEL_DIR / "model.safetensors")
    b = load_file(runs["two"] / MODEL_DIR / "model.safetensors")
    assert a.keys() == b.keys()
    moved = max((a[k] - teacher[k]).abs().max().item() for k in a if k in teacher)
    assert moved > 1e-3
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-4, msg=key)
    ea = load_file(runs["one"] / MODEL_DIR / "snapflow_target_time.safetensors")
    eb = load_file(runs["two"] / MODEL_DIR / "snapflow_target_time.safetensors")
    for key in ea:
        torch.testing.assert_close(eb[key], ea[key], rtol=0, atol=1e-4, msg=key)


@pytest.mark.slow
def test_processes_draw_disjoint_shards_of_one_order(
    tiny_smolvla_dir: Path, dataset_root: Path, tmp_path: Path
) -> None:
    """The batches the training loop gets in each of 2 processes (``_shard_probe.py``): at every
    step the two are disjoint and together are the batch of 1 process with twice the batch
    size; an epoch (6 steps) covers every training frame once; positioned at step 5 (a
    resume), each process continues with the batches it had from step 5 on."""
    from snapflow_ros.runtime import checkpoint as ckpt

    args = [str(dataset_root), str(tmp_path), str(tiny_smolvla_dir)]
    done = torchrun(tmp_path / "log", str(PROBE), *args)
    assert done.returncode == 0, (done.stderr[-3000:], rank_output(tmp_path / "log", 0)[1][-3000:])
    ranks = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["num_processes"] == 2

    # the reference: one process, batch 8, the same seed, without Accelerate
    config = ckpt.load_policy_config(tiny_smolvla_dir, "smolvla", "cpu", None)
    split = data.make_split(str(dataset_root), config, "1")
    train_set = data.load_episodes(split, split.train_episodes)
    loader, _ = data.make_train_loader(train_set, 2 * probe.BATCH, probe.SEED, 0)
    reference: list[list[int]] = []
    for batch in data.cycle(loader):
        reference.append([int(i) for i in batch["index"]])
        if len(reference) == probe.STRAIGHT:
            break

    train_frames = set()
    for ep in split.train_episodes:
        start = int(train_set.meta.episodes["dataset_from_index"][ep])
        end = int(train_set.meta.episodes["dataset_to_index"][ep])
        train_frames.update(range(start, end))
    assert len(train_frames) == 48
    epoch: list[int] = []
    for step, expected in enumerate(reference):
        first, second = ranks[0]["straight"][step], ranks[1]["straight"][step]
        assert len(first) == len(second) == probe.BATCH
        assert not set(first) & set(second), step
        assert first + second == expected, step
        if step < 6:
            epoch += expected
    assert sorted(epoch) == sorted(train_frames)
    for r in ranks:
        straight = r["straight"][probe.RESUME_AT : probe.RESUME_AT + probe.RESUMED]
        assert r["resumed"] == straight


@pytest.mark.slow
def test_accelerate_launch_process_counts(
    tiny_smolvla_dir: Path, dataset_root: Path, tmp_path: Path
) -> None:
    """What the docs say about ``accelerate launch`` on a machine without GPUs: ``--cpu
    --num_processes 2`` starts ONE process, which says so and warns; ``--multi_gpu
    --num_processes 2 ... --device cpu`` starts two (gloo), announced once (2-step runs)."""
    # -q: accelerate does not repeat its processes' output in its own traceback
    launch = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]

    def run(name: str, *flags: str) -> subprocess.CompletedProcess:
        distill = [
            "-m", "snapflow_training.distill_cli", "--policy", str(tiny_smolvla_dir),
            "--dataset", str(dataset_root), "--output", str(tmp_path / name), "--steps", "2",
            "--batch-size", "2", "--eval-episodes", "0", "--num-workers", "0",
            "--warmup-steps", "1", "--device", "cpu", "--no-progress",
        ]  # fmt: skip
        cmd = [*launch, *flags, "--num_processes", "2", *distill]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=_env(), check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    alone = run("alone", "--cpu")
    assert "running as 1 process on cpu (not distributed): batch 2 per step" in alone.stderr
    assert "but running as ONE process" in alone.stderr
    assert (
        json.loads((tmp_path / "alone" / MODEL_DIR / "snapflow.json").read_text())["settings"][
            "num_processes"
        ]
        == 1
    )

    pair = run("pair", "--multi_gpu", "--main_process_port", "0")
    assert pair.stderr.count("running as 2 processes (MULTI_CPU, gloo backend") == 1
    assert "batch 2 per process = 4 per step" in pair.stderr
    assert "running as ONE process" not in pair.stderr
    assert pair.stdout.count("training throughput (median)") == 1
    assert (
        json.loads((tmp_path / "pair" / MODEL_DIR / "snapflow.json").read_text())["settings"][
            "num_processes"
        ]
        == 2
    )


def test_process_errors_are_tagged(tiny_smolvla_dir: Path, tmp_path: Path) -> None:
    """A bad input under 2 processes: each process reports it once, the main one with the usual
    line, the other tagged with its rank (torchrun; a missing dataset ends them at once)."""
    args = [
        "--policy", str(tiny_smolvla_dir), "--dataset", str(tmp_path / "no_dataset"),
        "--output", str(tmp_path / "out"), "--device", "cpu",
    ]  # fmt: skip
    done = torchrun(tmp_path / "log", "-m", "snapflow_training.distill_cli", *args)
    assert done.returncode != 0
    err0, err1 = rank_output(tmp_path / "log", 0)[1], rank_output(tmp_path / "log", 1)[1]
    message = f"dataset folder {tmp_path / 'no_dataset'} does not exist"
    assert err0.strip() == f"distill: error: {message}"
    assert err1.strip() == f"distill: error (process 1): {message}"


# --------------------------------------------------------------------------- the objective
SHARD_CASES = {
    "defaults": SnapFlowConfig(),
    "flow matching only": SnapFlowConfig(alpha=1.0),
    "ramp, random times, alpha 0.25": SnapFlowConfig(
        progressive="ramp", consistency_times="random", ramp_steps=10, alpha=0.25
    ),
}


def _toy_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear velocity model, 8 samples of (10, 3) actions and noise, and padding that
    falls mostly in the first half (so the halves hold different numbers of valid elements)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3, dtype=torch.float64)
    actions = torch.randn(8, 10, 3, dtype=torch.float64)
    noise = torch.randn(8, 10, 3, dtype=torch.float64)
    pad = torch.zeros(8, 10, dtype=torch.bool)
    pad[0, 2:] = pad[1, 5:] = pad[2, 7:] = pad[3, 9:] = pad[6, 8:] = True
    return model, actions, noise, pad


def _loss(model, actions, noise, pad, config, shard=None):
    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        times = torch.stack([t, s], dim=-1).to(x.dtype)[:, None, :].expand(-1, x.shape[1], -1)
        return model(torch.cat([x, times], dim=-1))

    generator = torch.Generator().manual_seed(11)
    return snapflow_loss(velocity, actions, noise, config, 4, generator, pad, shard=shard)


def _shard_worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        results = {}
        for name, config in SHARD_CASES.items():
            model, actions, noise, pad = _toy_problem()
            rows = slice(4 * rank, 4 * rank + 4)
            shard = BatchShard(rank, 2, sum_across_processes)
            out_loss = _loss(model, actions[rows], noise[rows], pad[rows], config, shard)
            out_loss.total.backward()
            grads = [sum_across_processes(p.grad) / 2 for p in model.parameters()]  # as DDP
            results[name] = {
                "value": out_loss.value,
                "terms": (out_loss.flow_matching, out_loss.consistency),
                "counts": (out_loss.num_fm, out_loss.num_cons),
                "t": out_loss.times.t,
                "grads": grads,
            }
        torch.save(results, Path(out) / f"shard_{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.numerics
def test_sharded_loss_equals_the_global_batch(tmp_path: Path) -> None:
    """Two gloo processes with 4 samples each give the loss, the terms and (averaged as DDP
    does) the gradients of one process with all 8, in float64 to 1e-12 relative (summation
    order only), for configurations with and without consistency samples; each process's
    times are its rows of the global batch's."""
    mp.spawn(_shard_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    shards = [torch.load(tmp_path / f"shard_{r}.pt", weights_only=False) for r in (0, 1)]
    for name, config in SHARD_CASES.items():
        model, actions, noise, pad = _toy_problem()
        full = _loss(model, actions, noise, pad, config)
        full.total.backward()
        for rank, shard in enumerate(shards):
            got = shard[name]
            close = {"rtol": 1e-12, "atol": 0.0}
            torch.testing.assert_close(got["value"], full.total.detach(), **close, msg=name)
            torch.testing.assert_close(got["terms"][0], full.flow_matching, **close, msg=name)
            torch.testing.assert_close(got["terms"][1], full.consistency, **close, msg=name)
            assert got["counts"] == (full.num_fm, full.num_cons)
            assert torch.equal(got["t"], full.times.t[4 * rank : 4 * rank + 4])
            for g, p in zip(got["grads"], model.parameters(), strict=True):
                torch.testing.assert_close(g, p.grad, rtol=1e-12, atol=1e-15, msg=name)
    # not true by construction: the halves alone give other losses than the global batch
    model, actions, noise, pad = _toy_problem()
    half = _loss(model, actions[:4], noise[:4], pad[:4], SnapFlowConfig())
    assert not torch.allclose(half.total, shards[0]["defaults"]["value"], rtol=1e-3)
