"""Scripted demonstrations written with LeRobot's dataset API: read back, resumed, refused.

One real recording (libero_object task 0, 32x32 fast renders): one episode, then a resume to
two; the result is read back with ``LeRobotDataset``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from snapflow_ros.sim import LEROBOT_STATE_NAMES, SimObservation
from snapflow_ros.sim.placements import episode_seed
from snapflow_ros.sim.scripted_expert import expert_task
from snapflow_ros.training_data.dataset_rollback import CHECKPOINT_FILE
from snapflow_ros.training_data.demonstrations import (
    LEDGER_FILE,
    SPEC_FILE,
    DemoDatasetError,
    DemoSpec,
    dataset_hash,
    demo_features,
    main,
    make_frame,
    read_ledger,
    record_demonstrations,
)

SPEC = DemoSpec(image_size=32, fast_render=True, seed=5, repo_id="local/test_demos")
TASK = expert_task("libero_object", 0)


def _load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(SPEC.repo_id, root=root)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The dataset after one episode (its first episode's actions) and after resuming to two."""
    root = tmp_path_factory.mktemp("demos") / "ds"
    first = record_demonstrations(root, 1, SPEC, progress=False, command="recorded by the test")
    ds = _load(root)
    actions = np.stack([ds[i]["action"].numpy() for i in range(ds.num_frames)])
    second = record_demonstrations(root, 2, SPEC, progress=False)
    return root, first, actions, second


def test_two_episodes_read_back_with_lerobot(recorded):
    root, first, _, second = recorded
    assert first["episodes"] == 1 and second["episodes"] == 2
    ds = _load(root)
    ledger = read_ledger(root)
    assert ds.num_episodes == 2 and ds.fps == 20
    assert [r["episode_index"] for r in ledger] == [0, 1]
    assert ds.num_frames == sum(r["steps"] for r in ledger)
    assert list(ds.meta.episodes["length"]) == [r["steps"] for r in ledger]
    for record in ledger:  # every episode's seed is recorded and derived from its attempt
        assert record["seed"] == episode_seed(SPEC.seed, record["attempt"], "demo")
        assert set(record["via"]) >= {"approach_offset", "carry_height", "speed", "drop_offset"}
    assert ledger[0]["attempt"] < ledger[1]["attempt"] and ledger[0]["via"] != ledger[1]["via"]
    frame = ds[0]
    assert frame["observation.images.image"].shape == (3, 32, 32)
    assert frame["observation.images.image2"].shape == (3, 32, 32)
    assert frame["observation.state"].shape == (8,) and frame["action"].shape == (7,)
    assert frame["task"] == "pick up the alphabet soup and place it in the basket"
    assert ds.meta.features["observation.state"]["names"] == list(LEROBOT_STATE_NAMES)
    actions = np.stack([ds[i]["action"].numpy() for i in range(ds.num_frames)])
    assert np.abs(actions).max() <= 1.0 and actions[:, 6].min() == -1 and actions[:, 6].max() == 1
    image = frame["observation.images.image"].numpy()
    assert image.std() > 0.05  # a rendered scene, not a blank frame
    info = json.loads((root / SPEC_FILE).read_text())
    assert info["spec"]["image_size"] == 32 and info["privileged_state"] is False
    assert info["command"] == "recorded by the test"
    assert "stats.json" in {p.name for p in (root / "meta").iterdir()}


def test_resume_continues_without_touching_or_duplicating(recorded):
    root, _, first_actions, _ = recorded
    ds = _load(root)
    again = np.stack([ds[i]["action"].numpy() for i in range(len(first_actions))])
    np.testing.assert_array_equal(again, first_actions)  # episode 0 unchanged by the resume
    seeds = [r["seed"] for r in read_ledger(root)]
    assert len(set(seeds)) == len(seeds) == 2
    assert sorted(set(ds[i]["episode_index"].item() for i in range(ds.num_frames))) == [0, 1]
    # asking again for two episodes records nothing and changes no file
    before = dataset_hash(root)
    again = record_demonstrations(root, 2, SPEC, progress=False)
    assert again["attempts_this_run"] == 0 and again["sha256"] == before == dataset_hash(root)
    assert len(read_ledger(root)) == 2 and _load(root).num_episodes == 2


def test_two_worker_processes_record_the_same_dataset_as_one(recorded, tmp_path):
    """Attempts run in two simulator processes; the writer takes them in attempt order, so
    the episodes, their ledger and their frames equal the one-process recording's."""
    root = recorded[0]
    parallel = record_demonstrations(
        tmp_path / "ds", 2, SPEC, progress=False, workers=2, command="recorded by the test"
    )
    assert parallel["episodes"] == 2
    assert read_ledger(tmp_path / "ds") == read_ledger(root)
    assert parallel["sha256"] == dataset_hash(root)
    assert _load(tmp_path / "ds").num_episodes == 2


@pytest.mark.parametrize("flag", ["--workers", "--episodes", "--checkpoint-every"])
def test_counts_below_one_are_refused(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "ds"), flag, "0", "--no-progress"])
    assert exit_info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_resume_refuses_other_settings_and_foreign_folders(recorded, tmp_path, capsys):
    root = recorded[0]
    other = DemoSpec(image_size=64, fast_render=True, seed=5, repo_id=SPEC.repo_id)
    with pytest.raises(DemoDatasetError, match="image_size"):
        record_demonstrations(root, 3, other, progress=False)
    (tmp_path / "notes.txt").write_text("x")
    assert main([str(tmp_path), "--episodes", "1", "--no-progress"]) == 2
    assert "is not a demonstration dataset" in capsys.readouterr().err
    assert (root / LEDGER_FILE).is_file()


KILLED_RECORDING = """
import os, signal, sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
ds = LeRobotDataset.resume(sys.argv[1], root=sys.argv[2])
for k in range(6):
    ds.add_frame({
        "observation.images.image": np.zeros((32, 32, 3), np.uint8),
        "observation.images.image2": np.zeros((32, 32, 3), np.uint8),
        "observation.state": np.zeros(8, np.float32),
        "action": np.zeros(7, np.float32),
        "task": "pick up the alphabet soup and place it in the basket",
    })
ds.save_episode()
os.kill(os.getpid(), signal.SIGKILL)  # no finalize, no clean-up: a hard kill
"""


def test_a_recording_killed_hard_is_rolled_back_to_its_checkpoint(recorded, tmp_path, capfd):
    """SIGKILL after an episode was saved but before the dataset was finalized: the parquet
    files lack their footers and info.json counts an episode nobody can read. The next run
    returns to the last checkpoint (two episodes, untouched) and records from there."""
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    shutil.copytree(recorded[0], root)
    before = dataset_hash(root)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RECORDING, SPEC.repo_id, str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert json.loads((root / "meta" / "info.json").read_text())["total_episodes"] == 3
    newest = max((root / "data").rglob("*.parquet"))
    with pytest.raises(Exception, match="(?i)parquet|footer|magic"):
        pq.read_table(newest)  # the kill left it unreadable
    result = record_demonstrations(root, 3, SPEC, progress=False)
    err = capfd.readouterr().err
    assert "was cut short after its last checkpoint: back to its 2 checkpointed episodes" in err
    assert result["episodes"] == 3
    ds = _load(root)
    ledger = read_ledger(root)
    assert ds.num_episodes == 3 and [r["episode_index"] for r in ledger] == [0, 1, 2]
    assert ds.num_frames == sum(r["steps"] for r in ledger)
    first_two = sum(r["steps"] for r in ledger[:2])
    ref = _load(recorded[0])
    np.testing.assert_array_equal(
        np.stack([ds[i]["action"].numpy() for i in range(first_two)]),
        np.stack([ref[i]["action"].numpy() for i in range(first_two)]),
    )
    assert dataset_hash(root) != before and (root / CHECKPOINT_FILE).is_file()


def test_privileged_state_appends_object_and_target_positions():
    spec = DemoSpec(privileged=True)
    features = demo_features(spec, TASK)
    names = features["observation.state"]["names"]
    assert features["observation.state"]["shape"] == (14,) and names[:8] == list(
        LEROBOT_STATE_NAMES
    )
    # generic names (the bridge publishes the same ones); which object: the expert task
    assert names[8:] == [f"privileged_{p}_pos_{a}" for p in ("object", "target") for a in "xyz"]
    obs = SimObservation(
        step=0,
        images={"agentview": np.zeros((4, 4, 3), np.uint8), "wrist": np.ones((4, 4, 3), np.uint8)},
        state=np.arange(8, dtype=np.float32),
        eef_pos=np.zeros(3),
        eef_quat=np.array([1.0, 0, 0, 0]),
        joint_pos=np.zeros(7),
        joint_vel=np.zeros(7),
        gripper_qpos=np.zeros(2),
        gripper_qvel=np.zeros(2),
        object_pos={"alphabet_soup_1": np.array([0.1, 0.2, 0.3])},
    )
    target = np.array([0.4, 0.5, 0.6])
    frame = make_frame(obs, np.full(7, 0.5), target, spec, TASK, "task")
    np.testing.assert_allclose(
        frame["observation.state"], [*range(8), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], rtol=1e-6
    )
    assert frame["observation.state"].dtype == np.float32
    assert frame["observation.images.image2"].max() == 1 and frame["task"] == "task"
    plain = make_frame(obs, np.zeros(7), target, DemoSpec(), TASK, "task")
    assert plain["observation.state"].shape == (8,)


def _synthetic(root, episodes, resume_after=None, change=None):
    """A tiny dataset written with LeRobot's API (no simulator); optionally resumed midway."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    spec = DemoSpec(image_size=8)
    dataset = LeRobotDataset.create(
        "local/h", 20, demo_features(spec, TASK), root=root, use_videos=False
    )
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        if ep == resume_after:
            dataset.finalize()
            dataset = LeRobotDataset.resume("local/h", root=root)
        for k in range(3):
            frame = {
                "observation.images.image": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                "observation.images.image2": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                "observation.state": rng.normal(size=8).astype(np.float32),
                "action": rng.uniform(-1, 1, 7).astype(np.float32),
                "task": "t",
            }
            if change == (ep, k):
                frame["action"][0] += 1e-3
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return root


def test_dataset_hash_follows_the_frames_not_the_files(tmp_path):
    one = dataset_hash(_synthetic(tmp_path / "a", 2))
    split = _synthetic(tmp_path / "b", 2, resume_after=1)
    assert len(list((split / "data").rglob("*.parquet"))) == 2  # other files, same frames
    assert dataset_hash(split) == one and len(one) == 64
    assert dataset_hash(_synthetic(tmp_path / "c", 2, change=(1, 2))) != one
