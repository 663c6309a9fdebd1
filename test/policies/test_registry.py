"""The one policy resolver (snapflow_ros.policies): every kind of name it accepts (tiny and
shipped names, folders, Hub ids), what it refuses and with which message, that importing it
stays cheap, and that the entry points built on it (the runtime, ``distill``) take names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from snapflow_training.distill_cli import main as distill_main
from snapflow_training.student import load_policy
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset

from snapflow_ros.policies import (
    EMBEDDED_POLICIES,
    LIBERO_POLICIES,
    LIBERO_TINY,
    MODELS_DIR,
    TINY_POLICIES,
    check_policy_path,
    embedded_dir,
    libero_tiny_spec,
    resolve_policy,
    tiny_spec,
)
from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint
from snapflow_ros.runtime import CheckpointError, PolicyRuntime, RuntimeOptions
from test.fresh_interpreter import modules_loaded
from test.nodes.harness import InProcessNode, domain_id, node_parameters

LIBERO_LIKE = SyntheticSpec(
    num_episodes=2, episode_length=6, image_height=64, image_width=64,
    camera_names=("image", "image2"), state_dim=8, action_dim=7, seed=4,
)  # fmt: skip
"""A dataset with the shipped teacher's features (LIBERO's cameras, state and actions)."""
ROBOT_LIKE = SyntheticSpec(num_episodes=2, episode_length=6, seed=4)
"""A dataset with the tiny:smolvla features (the synthetic robot's cameras front and wrist)."""


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: the Hub client answers from its (empty) cache only, at once."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def default_tiny_cache(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$SNAPFLOW_CACHE`` pointing at the session's tiny checkpoints (what ``tiny:`` names
    resolve to when no cache folder is passed, e.g. from ``distill``)."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tiny").symlink_to(tiny_cache, target_is_directory=True)
    monkeypatch.setenv("SNAPFLOW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tiny"


def test_every_tiny_name_is_known_and_others_are_refused():
    for name in (*TINY_POLICIES, "tiny:", "/ckpt", "lerobot/smolvla_base", ""):
        check_policy_path(name)
    with pytest.raises(ValueError, match="unknown tiny policy 'tiny:pi0' .*tiny:libero-pi05"):
        check_policy_path("tiny:pi0")
    with pytest.raises(ValueError, match="empty"):
        resolve_policy(" ")


def test_unknown_names_are_refused_by_the_resolver_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown tiny policy 'tiny:x' \(tiny:smolvla, .*"):
        resolve_policy("tiny:x")
    with pytest.raises(ValueError, match=r"unknown embedded policy 'libero:x' \(.*libero:teacher"):
        resolve_policy("libero:x")


def test_the_tiny_specs():
    assert tiny_spec("tiny:") == tiny_spec("tiny:smolvla") == TinySpec(policy_type="smolvla")
    assert tiny_spec("tiny:pi05") == TinySpec(policy_type="pi05")
    assert tiny_spec("tiny:libero") == tiny_spec("tiny:libero-smolvla") == libero_tiny_spec()
    libero = tiny_spec("tiny:libero-pi05")
    assert (libero.policy_type, libero.camera_names, libero.state_dim, libero.action_dim) == (
        "pi05",
        ("image", "image2"),
        8,
        7,
    )
    assert set(LIBERO_TINY) <= set(TINY_POLICIES)
    assert libero_tiny_spec("smolvla", 128).image_height == 128


def test_a_tiny_name_resolves_to_its_cached_checkpoint(tiny_cache, tiny_smolvla_dir):
    assert resolve_policy("tiny:smolvla", tiny_cache) == tiny_smolvla_dir
    expected = ensure_tiny_checkpoint(TinySpec(policy_type="smolvla"), tiny_cache)
    assert resolve_policy("tiny:", tiny_cache) == expected


def test_the_shipped_libero_policies_resolve_to_their_folders():
    with pytest.raises(ValueError, match="unknown embedded policy 'libero:nope'"):
        check_policy_path("libero:nope")
    for name, folder in EMBEDDED_POLICIES.items():
        assert name in LIBERO_POLICIES
        assert resolve_policy(name) == embedded_dir(name) == MODELS_DIR / folder
        assert (resolve_policy(name) / "model.safetensors").is_file()
    for task in ("", "spatial-"):  # a teacher and its SnapFlow student per task
        assert (resolve_policy(f"libero:{task}snapflow") / "snapflow.json").is_file()
        assert not (resolve_policy(f"libero:{task}teacher") / "snapflow.json").exists()


def test_every_shipped_file_is_the_one_its_manifest_lists():
    """Each shipped pair's files are those its manifest hashed (nothing swapped or missing),
    and every folder a name points to belongs to a manifest."""
    listed = set()
    for manifest_path in sorted(MODELS_DIR.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        assert manifest["name"] == manifest_path.parent.name and manifest["size_mb"] <= 25
        for policy in manifest["policies"].values():
            folder = manifest_path.parent / policy["folder"]
            listed.add(folder)
            for rel, digest in policy["files"].items():
                assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    assert {MODELS_DIR / folder for folder in EMBEDDED_POLICIES.values()} <= listed


def test_a_local_folder_becomes_absolute_even_where_it_looks_like_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "ckpt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_policy("org/ckpt") == tmp_path / "org" / "ckpt"
    assert resolve_policy(Path("org") / "ckpt") == tmp_path / "org" / "ckpt"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_policy("~/org") == tmp_path / "org"


def test_a_file_and_a_missing_folder_are_checkpoint_errors(tmp_path, monkeypatch):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError) as err:
        resolve_policy(tmp_path / "model.safetensors")
    assert str(err.value) == (
        f"{tmp_path / 'model.safetensors'} is a file; a checkpoint is a folder with config.json"
    )
    monkeypatch.chdir(tmp_path)
    for missing in (tmp_path / "nope", "./nope", "a/b/nope", "nope"):  # none is a Hub id
        with pytest.raises(CheckpointError) as err:
            resolve_policy(missing)
        assert str(err.value) == f"checkpoint folder {Path(missing)} does not exist"


def test_an_unreachable_hub_id_is_a_checkpoint_error_that_says_what_to_do(offline_hub):
    with pytest.raises(CheckpointError) as err:
        resolve_policy("someone/not-a-local-folder")
    message = str(err.value)
    assert "'someone/not-a-local-folder' is neither a local folder nor a reachable" in message
    assert "Download it on a connected machine and pass the folder" in message


def test_importing_the_registry_imports_no_torch_cv2_or_ros():
    setup = (
        "import snapflow_ros.policies as p\n"
        "p.check_policy_path('tiny:libero')\n"
        "p.resolve_policy('libero:snapflow')"
    )
    roots = ("torch", "cv2", "lerobot", "rclpy", "huggingface_hub")
    assert modules_loaded(setup, roots, timeout=60) == []


def test_the_runtime_takes_every_kind_of_name(default_tiny_cache, offline_hub):
    opts = RuntimeOptions(device="cpu", warmup=0)
    assert PolicyRuntime("tiny:smolvla", opts).checkpoint_dir == resolve_policy("tiny:smolvla")
    assert PolicyRuntime("libero:snapflow", opts).is_snapflow
    with pytest.raises(CheckpointError, match="neither a local folder nor a reachable"):
        PolicyRuntime("someone/not-a-local-folder", opts)


def test_the_policy_node_reports_a_missing_folder_as_the_loader_does(tmp_path):
    missing = tmp_path / "nope"
    node = InProcessNode(
        domain_id(71), node_parameters({"policy_path": str(missing), "torch_threads": 1})
    )
    try:
        node.node.autostart()
        assert node.node.state_label == "unconfigured"
        error = node.node.report().configure_error
        assert error == f"CheckpointError: checkpoint folder {missing} does not exist", error
    finally:
        node.close()
    assert not node.errors, node.errors


# ------------------------------------------------------------------------------ distill
def test_distill_loads_the_shipped_teacher_by_name():
    loaded = load_policy("libero:teacher", "cpu")
    assert loaded.checkpoint_dir == embedded_dir("libero:teacher")
    assert loaded.policy_type == "smolvla" and loaded.meta is None
    assert loaded.action_dim == 7
    assert set(loaded.config.input_features) == {
        "observation.images.image",
        "observation.images.image2",
        "observation.state",
    }


def _distill_eval_only(policy: str, dataset: Path, out: Path) -> list[str]:
    """A ``distill --eval-only`` command line: its checks run the whole preflight (resolve
    the policy, read its config, fit its features to the dataset) before they find that the
    output holds no student, and stop there (exit 2)."""
    return [
        "--policy", policy, "--dataset", str(dataset), "--output", str(out), "--eval-only",
        "--eval-episodes", "1", "--device", "cpu", "--num-workers", "0", "--no-progress",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["libero:teacher", "tiny:smolvla"])
def test_distill_preflight_accepts_policy_names(
    name: str, default_tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = LIBERO_LIKE if name.startswith("libero:") else ROBOT_LIKE
    data = ensure_synthetic_dataset(tmp_path / "data", spec)
    capsys.readouterr()
    assert distill_main(_distill_eval_only(name, data, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "--eval-only:" in err and "is not a SnapFlow checkpoint" in err, err


def test_distill_refuses_a_policy_whose_features_differ_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The synthetic robot's dataset (cameras front/wrist) does not fit libero:teacher: the
    message comes from the teacher's config, so the name was resolved and read."""
    data = ensure_synthetic_dataset(tmp_path / "data", ROBOT_LIKE)
    capsys.readouterr()
    assert distill_main(_distill_eval_only("libero:teacher", data, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distill: error: ") and "observation.images.image" in err, err
