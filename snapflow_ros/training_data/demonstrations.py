"""Scripted demonstrations as a LeRobotDataset (LeRobot's own create/add_frame/save_episode API).

Each attempt ``k`` draws a fresh object placement from the task's own distribution (seed
``episode_seed(seed, k, "demo")``, never one of the 50 benchmark initial states that
evaluation uses), runs the scripted expert with via-points drawn from the same seed, and keeps
the episode only if it succeeds. Frames follow the simulator wrapper's (and LeRobot's LIBERO)
conventions: upright images ``observation.images.image`` (agentview) and
``observation.images.image2`` (wrist), the 8-D ``observation.state``, the 7-D ``action`` taken
from that observation, 20 fps, the task's instruction as the task.

``--privileged`` appends the task object's position and the target's position (6 values) to
``observation.state``: the feature's names say so, and so does ``meta/snapflow_demos.json``.

Resume: running the same command again opens the dataset with ``LeRobotDataset.resume`` and
continues with the next attempt; ``meta/snapflow_episodes.jsonl`` records, per saved episode,
its index, attempt, seed, length and via-points. The dataset is finalized and checkpointed
(:mod:`snapflow_ros.training_data.dataset_rollback`) every ``--checkpoint-every`` episodes, on
Ctrl-C and on SIGTERM. A run killed hard between checkpoints (SIGKILL, out of memory, power
loss) leaves unreadable files: the next run returns the dataset to its last checkpoint first
(and says so), so a crash loses at most the episodes since then.

``--workers N`` runs the attempts in N processes (one simulator each); the writer still takes
them in attempt order, so the dataset is the same as with one worker. Usage: ``docs/libero.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.sim.libero_env import (
    ARM_STARTS,
    LEROBOT_STATE_NAMES,
    PLACEMENTS,
    LiberoSim,
    SimConfig,
    SimObservation,
)
from snapflow_ros.sim.placements import episode_seed
from snapflow_ros.sim.scripted_expert import (
    PRIVILEGED_STATE_NAMES,
    PickPlaceTask,
    expert_task,
    privileged_state,
    run_expert_episode,
    sample_via_points,
    target_position,
)
from snapflow_ros.sim.suites import CONTROL_FREQ
from snapflow_ros.training_data.dataset_rollback import (
    CheckpointError,
    load_checkpoint,
    matches_checkpoint,
    roll_back,
    save_checkpoint,
)

IMAGE_KEYS = {"agentview": "observation.images.image", "wrist": "observation.images.image2"}
SPEC_FILE = "meta/snapflow_demos.json"
LEDGER_FILE = "meta/snapflow_episodes.jsonl"
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
# An attempt takes ~10-60 s; a worker process that died (a simulator crash) never answers.
ATTEMPT_TIMEOUT_S = 600.0


class DemoDatasetError(RuntimeError):
    """The output folder cannot be written or resumed; the message says why."""


@dataclass(frozen=True)
class DemoSpec:
    """What a demonstration dataset holds (stored in ``meta/snapflow_demos.json``)."""

    suite: str = "libero_object"
    task_index: int = 0
    image_size: int = 64
    privileged: bool = False
    use_videos: bool = False
    fast_render: bool = False
    seed: int = 0
    repo_id: str = "local/libero_demos"
    arm_start: str = "benchmark"  # SimConfig.arm_start of the fresh placements
    placements: str = "settled"  # SimConfig.placements: which fresh placements are kept


def state_names(spec: DemoSpec, task: PickPlaceTask) -> list[str]:
    """Names of ``observation.state``: LeRobot's 8 LIBERO values (+ 6 privileged ones)."""
    names = list(LEROBOT_STATE_NAMES)
    if spec.privileged:  # which object and target: the expert task in meta/snapflow_demos.json
        names += PRIVILEGED_STATE_NAMES
    return names


def demo_features(spec: DemoSpec, task: PickPlaceTask) -> dict[str, dict[str, Any]]:
    """The LeRobot feature schema of the dataset."""
    kind = "video" if spec.use_videos else "image"
    shape = (spec.image_size, spec.image_size, 3)
    features: dict[str, dict[str, Any]] = {
        key: {"dtype": kind, "shape": shape, "names": ["height", "width", "channels"]}
        for key in IMAGE_KEYS.values()
    }
    names = state_names(spec, task)
    features["observation.state"] = {"dtype": "float32", "shape": (len(names),), "names": names}
    features["action"] = {"dtype": "float32", "shape": (7,), "names": list(ACTION_NAMES)}
    return features


def make_frame(
    obs: SimObservation,
    action: np.ndarray,
    target: np.ndarray,
    spec: DemoSpec,
    task: PickPlaceTask,
    instruction: str,
) -> dict[str, Any]:
    """One LeRobot frame: the observation's images and state with the action taken from it."""
    state = obs.state
    if spec.privileged:
        extra = privileged_state(obs, target, task)
        state = np.concatenate([state, extra.astype(np.float32)])
    frame: dict[str, Any] = {key: obs.images[cam] for cam, key in IMAGE_KEYS.items()}
    frame["observation.state"] = np.asarray(state, np.float32)
    frame["action"] = np.asarray(action, np.float32)
    frame["task"] = instruction
    return frame


def read_ledger(root: Path) -> list[dict[str, Any]]:
    """The per-episode records of a dataset (empty when there are none)."""
    path = root / LEDGER_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _feed(digest: Any, value: Any) -> None:
    """Add a decoded parquet value (bytes, numbers, lists, dicts) to a hash, unambiguously."""
    if isinstance(value, bytes):
        digest.update(b"b%d:" % len(value) + value)
    elif isinstance(value, list):
        digest.update(b"l%d:" % len(value))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(b"d%d:" % len(value))
        for key in sorted(value):
            digest.update(key.encode() + b"=")
            _feed(digest, value[key])
    else:
        digest.update(repr(value).encode() + b";")


def dataset_hash(root: str | Path) -> str:
    """sha256 of a dataset's content, however its frames are split into files.

    Covers the fps, the features, the tasks and every frame in ``index`` order (all columns;
    images as stored, i.e. PNG bytes), plus the video files of a video dataset (by path).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    head = {"fps": info["fps"], "features": info["features"]}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    _feed(digest, pq.read_table(root / "meta" / "tasks.parquet").to_pylist())
    files = sorted((root / "data").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files]).sort_by("index")
    for name in sorted(table.column_names):
        digest.update(name.encode() + b"\0")
        for value in table.column(name).to_pylist():
            _feed(digest, value)
    for path in sorted((root / "videos").rglob("*.mp4")) if (root / "videos").is_dir() else []:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class _Stop(Exception):
    """SIGTERM: stop after finalizing, like Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop()


def _existing_ledger(root: Path, spec: DemoSpec) -> list[dict[str, Any]] | None:
    """The ledger of a dataset made with ``spec`` at ``root``; None when there is none yet."""
    if not (root / "meta" / "info.json").is_file():
        if root.exists() and any(root.iterdir()):
            raise DemoDatasetError(f"{root} exists and is not a demonstration dataset")
        return None
    spec_path = root / SPEC_FILE
    if not spec_path.is_file():
        raise DemoDatasetError(f"{root} is a LeRobotDataset but has no {SPEC_FILE}")
    stored = json.loads(spec_path.read_text())["spec"]
    if stored != asdict(spec):
        diff = {k: (stored.get(k), v) for k, v in asdict(spec).items() if stored.get(k) != v}
        raise DemoDatasetError(
            f"{root} was made with other settings (stored, asked): {diff}; use another folder"
        )
    return read_ledger(root)


def _recover(root: Path, ledger: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Return a dataset cut short after its last checkpoint to that checkpoint (see the module);
    the ledger to go on with (None: start a new dataset)."""
    if ledger is None:
        return None
    try:
        state = load_checkpoint(root)
        if not ledger and state is not None and state["episodes"] == 0:
            shutil.rmtree(root)  # killed before its first episode was checkpointed: start anew
            return None
        if state is None or matches_checkpoint(root, state):
            return ledger
        if state["episodes"] > len(ledger):
            raise CheckpointError(
                f"its last checkpoint holds {state['episodes']} episodes but {LEDGER_FILE} "
                f"lists {len(ledger)}"
            )
        deleted = roll_back(root, state)
    except CheckpointError as exc:
        raise DemoDatasetError(f"{root}: cannot recover: {exc}") from exc
    kept = ledger[: state["episodes"]]
    (root / LEDGER_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(
        f"demonstrations: {root} was cut short after its last checkpoint: back to its "
        f"{len(kept)} checkpointed episodes ({len(deleted)} files written since removed, "
        f"{len(ledger) - len(kept)} ledger records dropped)",
        file=sys.stderr,
    )
    return kept


def _open_dataset(
    root: Path, spec: DemoSpec, task: PickPlaceTask, ledger: list[dict[str, Any]] | None
) -> Any:
    """Create the dataset, or resume it after checking that it matches its ledger."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if ledger is None:
        if root.exists():
            root.rmdir()  # empty (checked): LeRobot creates the folder itself
        return LeRobotDataset.create(
            repo_id=spec.repo_id,
            fps=CONTROL_FREQ,
            features=demo_features(spec, task),
            root=root,
            robot_type="panda",
            use_videos=spec.use_videos,
        )
    dataset = LeRobotDataset.resume(spec.repo_id, root=root)
    if dataset.meta.total_episodes != len(ledger):
        raise DemoDatasetError(
            f"{root} holds {dataset.meta.total_episodes} episodes but {LEDGER_FILE} lists "
            f"{len(ledger)}: the previous run was killed between checkpoints; delete the folder "
            "or restore a consistent copy"
        )
    return dataset


def _write_spec(root: Path, spec: DemoSpec, task: PickPlaceTask, command: str) -> None:
    path = root / SPEC_FILE
    if path.is_file():
        return
    info = {
        "spec": asdict(spec),
        "expert": asdict(task),
        "state_names": state_names(spec, task),
        "privileged_state": spec.privileged,
        "placements": "fresh, the task's own placement distribution; attempt k uses "
        "snapflow_ros.sim.placements.episode_seed(seed, k, 'demo') for the placement "
        "and the expert's via-points (spec placements 'settled': a placement whose reset "
        "throws an object further than the benchmark's states move one is redrawn from "
        "seeds derived from that seed)",
        "successful_episodes_only": True,
        "command": command,
    }
    path.write_text(json.dumps(info, indent=2) + "\n")


@dataclass
class Attempt:
    """One expert attempt: its seed, outcome, via-points and (when it succeeded) its frames."""

    attempt: int
    seed: int
    success: bool
    steps: int
    retries: int
    via: dict[str, Any]
    frames: list[dict[str, Any]]


def run_attempt(sim: LiberoSim, spec: DemoSpec, task: PickPlaceTask, attempt: int) -> Attempt:
    """Run attempt ``attempt``: its own placement and via-points, both from its seed."""
    seed = episode_seed(spec.seed, attempt, "demo")
    via = sample_via_points(np.random.default_rng(seed), task)
    frames: list[dict[str, Any]] = []

    def keep(obs: SimObservation, action: np.ndarray) -> None:
        target = target_position(sim, obs, task)
        frames.append(make_frame(obs, action, target, spec, task, sim.task_language))

    result = run_expert_episode(sim, via, init_state=sim.sample_init_state(seed), on_step=keep)
    return Attempt(
        attempt=attempt,
        seed=seed,
        success=result.success,
        steps=result.steps,
        retries=result.retries,
        via=via.as_dict(),
        frames=frames if result.success else [],
    )


def _make_sim(spec: DemoSpec) -> LiberoSim:
    return LiberoSim(
        SimConfig(
            suite=spec.suite,
            task_index=spec.task_index,
            image_height=spec.image_size,
            image_width=spec.image_size,
            fast_render=spec.fast_render,
            init_states="benchmark",
            arm_start=spec.arm_start,
            placements=spec.placements,
        )
    )


def _attempts_inline(spec: DemoSpec, task: PickPlaceTask, first: int) -> Iterator[Attempt]:
    """Attempts ``first, first + 1, ...`` in this process."""
    sim = _make_sim(spec)
    try:
        attempt = first
        while True:
            yield run_attempt(sim, spec, task, attempt)
            attempt += 1
    finally:
        sim.close()


_worker_sim: LiberoSim | None = None


def _worker_init() -> None:
    """A worker process: Ctrl-C and SIGTERM are the writer's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker_attempt(spec: DemoSpec, attempt: int) -> Attempt:
    """Run one attempt in a worker process with its own simulator (made on the first call, so
    that a simulator that cannot start reaches the writer as this call's exception)."""
    global _worker_sim
    if _worker_sim is None:
        _worker_sim = _make_sim(spec)
    return run_attempt(_worker_sim, spec, expert_task(spec.suite, spec.task_index), attempt)


def _attempts_pooled(spec: DemoSpec, first: int, workers: int, ahead: int = 2) -> Iterator[Attempt]:
    """Attempts ``first, first + 1, ...`` from ``workers`` processes, yielded in attempt order
    (at most ``ahead`` attempts per worker run ahead of the writer; left over ones are dropped)."""
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
    in_flight: deque[tuple[int, Any]] = deque()
    try:
        for attempt in itertools.count(first):
            in_flight.append((attempt, pool.apply_async(_worker_attempt, (spec, attempt))))
            if len(in_flight) < workers * ahead:
                continue
            oldest, result = in_flight.popleft()
            try:
                yield result.get(timeout=ATTEMPT_TIMEOUT_S)
            except multiprocessing.TimeoutError:
                raise DemoDatasetError(
                    f"attempt {oldest}: no result from its worker process within "
                    f"{ATTEMPT_TIMEOUT_S:.0f} s (a crashed simulator?); the episodes recorded "
                    "before it are kept: run the command again to resume"
                ) from None
    finally:
        pool.terminate()
        pool.join()


def record_demonstrations(
    root: str | Path,
    episodes: int,
    spec: DemoSpec | None = None,
    max_attempts: int = 0,
    checkpoint_every: int = 25,
    progress: bool = True,
    command: str = "",
    workers: int = 1,
) -> dict[str, Any]:
    """Record until ``root`` holds ``episodes`` successful episodes (resuming what is there).

    ``max_attempts`` (0: 2 x the missing episodes) bounds the attempts of this call;
    ``command`` is stored in the dataset's metadata when it is created; ``workers`` processes
    run the attempts (the dataset does not depend on how many). Returns a summary.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    spec = spec or DemoSpec()
    root = Path(root)
    task = expert_task(spec.suite, spec.task_index)
    ledger = _recover(root, _existing_ledger(root, spec))
    summary = {"root": str(root), "episodes": len(ledger or []), "attempts_this_run": 0}
    if ledger is not None and len(ledger) >= episodes:
        return {**summary, "failed_this_run": 0, "wall_s": 0.0, "sha256": dataset_hash(root)}
    dataset = _open_dataset(root, spec, task, ledger)
    _write_spec(root, spec, task, command)
    if ledger is None:  # a new dataset: its first checkpoint holds no episode
        save_checkpoint(root, 0)
    ledger = ledger or []
    attempt = ledger[-1]["attempt"] + 1 if ledger else 0
    done = len(ledger)
    limit = max_attempts or 2 * max(episodes - done, 1)
    tried = failed = 0
    pending: list[dict[str, Any]] = []  # saved episodes not yet in the ledger

    def checkpoint() -> None:
        dataset.finalize()
        with (root / LEDGER_FILE).open("a") as f:
            f.writelines(json.dumps(record) + "\n" for record in pending)
        pending.clear()
        save_checkpoint(root, done)

    start = time.perf_counter()
    bar = tqdm(total=episodes, initial=done, unit="ep", disable=not progress, desc="demos")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    source = (
        _attempts_pooled(spec, attempt, workers)
        if workers > 1
        else _attempts_inline(spec, task, attempt)
    )
    try:
        while done < episodes and tried < limit:
            result = next(source)
            tried += 1
            if result.success:
                for frame in result.frames:
                    dataset.add_frame(frame)
                dataset.save_episode()
                pending.append(
                    {
                        "episode_index": done,
                        "attempt": result.attempt,
                        "seed": result.seed,
                        "steps": result.steps,
                        "retries": result.retries,
                        "via": result.via,
                    }
                )
                done += 1
                bar.update(1)
                if done % checkpoint_every == 0 and done < episodes:
                    checkpoint()
                    dataset = LeRobotDataset.resume(spec.repo_id, root=root)
            else:
                failed += 1
            bar.set_postfix(attempts=tried, failed=failed)
    except (KeyboardInterrupt, _Stop):
        print("demonstrations: interrupted; finalizing what was recorded", file=sys.stderr)
        if dataset.has_pending_frames():  # interrupted while adding an episode's frames
            dataset.clear_episode_buffer()
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        checkpoint()
        source.close()
    return {
        **summary,
        "episodes": done,
        "attempts_this_run": tried,
        "failed_this_run": failed,
        "wall_s": round(time.perf_counter() - start, 1),
        "sha256": dataset_hash(root),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line (``python -m snapflow_ros.training_data.demonstrations --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m snapflow_ros.training_data.demonstrations",
        description="Record successful scripted LIBERO demonstrations into a LeRobotDataset "
        "(fresh placements; re-run the same command to resume).",
    )
    p.add_argument("root", type=Path, help="dataset folder (created, or resumed if it exists)")
    p.add_argument("--episodes", type=int, default=100, help="successful episodes wanted")
    p.add_argument("--suite", default=DemoSpec.suite)
    p.add_argument("--task", type=int, default=DemoSpec.task_index)
    p.add_argument("--image-size", type=int, default=DemoSpec.image_size)
    p.add_argument("--seed", type=int, default=DemoSpec.seed, help="base seed of the attempts")
    p.add_argument(
        "--privileged",
        action="store_true",
        help="append object and target positions (6 values) to observation.state",
    )
    p.add_argument("--videos", action="store_true", help="store cameras as videos, not images")
    p.add_argument("--fast-render", action="store_true", help="no shadows/reflections")
    p.add_argument("--repo-id", default=DemoSpec.repo_id)
    p.add_argument("--max-attempts", type=int, default=0, help="0: 2 x the episodes missing")
    p.add_argument("--checkpoint-every", type=int, default=25, help="finalize every N episodes")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes running attempts (one simulator each; same dataset for any number)",
    )
    p.add_argument(
        "--arm-start",
        choices=ARM_STARTS,
        default=DemoSpec.arm_start,
        help="arm start pose of each placement: drawn like the task's benchmark initial states "
        "(default) or LIBERO's one fixed reset pose (datasets made before this option)",
    )
    p.add_argument(
        "--placements",
        choices=PLACEMENTS,
        default=DemoSpec.placements,
        help="settled (default): redraw a placement whose reset throws an object further than "
        "any benchmark initial state moves one (overlapping placement regions); any: LIBERO's "
        "first draw (datasets made before this option)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 0 when the dataset holds the episodes asked for, 1 otherwise."""
    # One progress bar: ours, not one from `datasets` per saved episode (the variable wins over
    # LeRobot, which switches those bars back on after saving).
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if min(args.episodes, args.checkpoint_every, args.workers) < 1:
        parser.error("--episodes, --checkpoint-every and --workers must be >= 1")
    if not 16 <= args.image_size <= 512:
        parser.error("--image-size must be in 16..512")
    try:
        expert_task(args.suite, args.task)
    except ValueError as exc:
        parser.error(str(exc))
    spec = DemoSpec(
        suite=args.suite,
        task_index=args.task,
        image_size=args.image_size,
        privileged=args.privileged,
        use_videos=args.videos,
        fast_render=args.fast_render,
        seed=args.seed,
        repo_id=args.repo_id,
        arm_start=args.arm_start,
        placements=args.placements,
    )
    try:
        summary = record_demonstrations(
            args.root,
            args.episodes,
            spec,
            max_attempts=args.max_attempts,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
            workers=args.workers,
            command="python -m snapflow_ros.training_data.demonstrations " + shlex.join(argv),
        )
    except DemoDatasetError as exc:
        print(f"demonstrations: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0 if summary["episodes"] >= args.episodes else 1


if __name__ == "__main__":
    sys.exit(main())
