"""The student module: gradients with pi0.5's gradient checkpointing, EMA / teacher targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from snapflow_training import data
from snapflow_training.objective import SnapFlowConfig
from snapflow_training.student import (
    DistillModule,
    ShadowWeights,
    attach_fresh_target_time,
    disable_gradient_checkpointing,
    load_policy,
    set_trainable,
)
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset

from snapflow_ros.runtime.adapters import make_adapter


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SyntheticSpec(num_episodes=2, episode_length=8, seed=3)
    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "student_2x8", spec)


def _batch(loaded, dataset_root: Path, size: int = 4) -> dict:
    split = data.make_split(str(dataset_root), loaded.config, "1")
    loader = torch.utils.data.DataLoader(data.load_episodes(split, [0]), batch_size=size)
    return loaded.preprocessor(next(iter(loader)))


def _live_embedding(loaded):
    embedding = attach_fresh_target_time(loaded)
    gen = torch.Generator().manual_seed(0)
    for param in embedding.parameters():  # a trained-looking embedding: s matters
        param.data = torch.randn(param.shape, generator=gen) * 0.3
    return embedding


def test_pi05_time_mlp_checkpointing_keeps_the_jump(tiny_pi05_dir: Path, dataset_root: Path):
    """LeRobot's pi0.5 checkpoints its time MLP when gradient checkpointing is on; the
    recomputation in backward must see the same jump as the forward pass."""
    grads = {}
    for checkpointing in (False, True):
        loaded = load_policy(tiny_pi05_dir, "cpu")
        embedding = _live_embedding(loaded)
        loaded.policy.train()
        loaded.policy.model.gradient_checkpointing_enabled = checkpointing  # time MLP only
        adapter = make_adapter(loaded.policy, "pi05", embedding)
        batch = _batch(loaded, dataset_root)
        with torch.no_grad():
            cache = adapter.encode_prefix(adapter.model_inputs(batch))
        x = torch.randn(adapter.noise_shape(4), generator=torch.Generator().manual_seed(1))
        t = torch.tensor([1.0, 0.75, 0.5, 0.3])
        v = adapter.velocity(cache, x, t, torch.zeros(4))
        v.square().mean().backward()
        grads[checkpointing] = embedding.proj.weight.grad.clone()
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)


def test_pi05_checkpoint_with_gradient_checkpointing_distils(
    tiny_pi05_dir: Path, dataset_root: Path, tmp_path: Path
):
    """A pi0.5 checkpoint saved with ``gradient_checkpointing: true`` gives the same loss and
    gradients as without (its checkpointing is turned off for the distillation)."""
    flagged = tmp_path / "pi05_gc"
    shutil.copytree(tiny_pi05_dir, flagged)
    config = json.loads((flagged / "config.json").read_text())
    config["gradient_checkpointing"] = True
    (flagged / "config.json").write_text(json.dumps(config))
    results = {}
    for name, path in (("plain", tiny_pi05_dir), ("flagged", flagged)):
        loaded = load_policy(path, "cpu")
        assert loaded.policy.model.gradient_checkpointing_enabled == (name == "flagged")
        assert disable_gradient_checkpointing(loaded.policy) == (name == "flagged")
        embedding = _live_embedding(loaded)
        set_trainable(loaded.policy, "pi05", "expert")
        module = DistillModule(loaded.policy, "pi05", embedding, SnapFlowConfig(), False)
        module.train()
        out = module(_batch(loaded, dataset_root), 0, torch.Generator().manual_seed(5))
        out["loss"].backward()
        results[name] = (out["loss"].detach(), embedding.proj.weight.grad.clone())
    torch.testing.assert_close(results["flagged"][0], results["plain"][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(results["flagged"][1], results["plain"][1], rtol=1e-5, atol=1e-7)


def test_shadow_weights_swap_and_ema() -> None:
    layer = torch.nn.Linear(2, 2)
    params = list(layer.parameters())
    shadow = ShadowWeights(params)
    before = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    with shadow.active():
        assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert all(torch.equal(p, b + 1) for p, b in zip(params, before, strict=True))
    shadow.update_ema(0.75)  # value <- 0.75 value + 0.25 param = before + 0.25
    assert all(torch.allclose(v, b + 0.25) for v, b in zip(shadow.values, before, strict=True))


@pytest.mark.parametrize("source", ["ema", "teacher"])
def test_target_sources_use_the_shadow_for_targets_only(
    source: str, tiny_smolvla_dir: Path, dataset_root: Path
) -> None:
    """Right after the student moved away from the teacher, 'teacher' and 'ema' (decay close to
    1) targets differ from the student's own, while the flow-matching term is the same."""
    losses = {}
    for name in ("student", source):
        loaded = load_policy(tiny_smolvla_dir, "cpu")
        embedding = attach_fresh_target_time(loaded)
        set_trainable(loaded.policy, "smolvla", "expert")
        objective = SnapFlowConfig(target_source=name, ema_decay=0.999)
        module = DistillModule(loaded.policy, "smolvla", embedding, objective, False)
        with torch.no_grad():  # the student moves away from the teacher (and the shadow)
            for p in module.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        module.after_optimizer_step()
        out = module(_batch(loaded, dataset_root), 0, torch.Generator().manual_seed(3))
        losses[name] = out
    assert torch.equal(losses["student"]["flow_matching"], losses[source]["flow_matching"])
    assert not torch.equal(losses["student"]["consistency"], losses[source]["consistency"])
