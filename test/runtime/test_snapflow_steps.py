"""Multi-step sampling of a SnapFlow checkpoint asks only for the jump lengths it was trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.sampling import euler_sample

from .helpers import make_observation, make_snapflow_copy

RECURSIVE_JUMPS = (1.0, 0.5, 0.25)  # what the default recursive objective trains


@pytest.fixture(scope="module")
def snapflow_dirs(tiny_checkpoint, tmp_path_factory):
    """SnapFlow copies with a live embedding: trained on 1, 1/2, 1/4, and an old-format file."""
    plain = PolicyRuntime(tiny_checkpoint, RuntimeOptions(device="cpu", warmup=0))
    root = tmp_path_factory.mktemp("steps")
    recursive = make_snapflow_copy(
        plain, tiny_checkpoint, root / "recursive", scale=0.5, trained_jumps=RECURSIVE_JUMPS
    )
    old = make_snapflow_copy(plain, tiny_checkpoint, root / "old", scale=0.5)
    meta = json.loads((old / "snapflow.json").read_text())
    del meta["trained_jumps"]  # written before the field existed
    (old / "snapflow.json").write_text(json.dumps(meta))
    return {"recursive": recursive, "old": old}


def _runtime(path, **kw) -> PolicyRuntime:
    return PolicyRuntime(path, RuntimeOptions(device="cpu", warmup=0, **kw))


def _reference(rt: PolicyRuntime, obs, noise: torch.Tensor, steps: int, jump: bool) -> np.ndarray:
    """Euler sampling written out: ``s = t - 1/N`` at every step when ``jump``, else ``s = t``."""
    batch = rt._to_batch(obs, rt.validate(obs))
    with torch.inference_mode():
        cache = rt.adapter.encode_prefix(rt.adapter.model_inputs(batch))
        x = noise.clone()
        for i in range(steps):
            t = 1.0 + i * (-1.0 / steps)
            s = max(t - 1.0 / steps, 0.0) if jump else t
            v = rt.adapter.velocity(cache, x, torch.full((1,), t), torch.full((1,), s))
            x = x + (-1.0 / steps) * v
        return rt.postprocessor(rt.adapter.finalize(x))[0].numpy()


def test_old_snapflow_json_loads_with_the_one_step_default(snapflow_dirs):
    rt = _runtime(snapflow_dirs["old"])
    assert rt.is_snapflow and rt.trained_jumps == [1.0]
    assert rt.default_num_steps == 1


@pytest.mark.parametrize("steps,jump", [(1, True), (2, True), (4, True), (3, False), (10, False)])
def test_eager_steps_use_trained_jumps_only(snapflow_dirs, steps, jump):
    rt = _runtime(snapflow_dirs["recursive"])
    assert rt.trained_jumps == list(RECURSIVE_JUMPS)
    obs = make_observation(rt, seed=steps)
    noise = torch.randn(rt.adapter.noise_shape(1), generator=torch.Generator().manual_seed(4))
    ours = rt.predict_chunk(obs, num_steps=steps, noise=noise).actions
    np.testing.assert_array_equal(ours, _reference(rt, obs, noise, steps, jump))
    if steps > 1:  # the embedding is live: the other choice of s gives another chunk
        other = _reference(rt, obs, noise, steps, not jump)
        assert np.abs(ours - other).max() > 1e-4


def test_old_file_multi_step_uses_instantaneous_velocity(snapflow_dirs):
    rt = _runtime(snapflow_dirs["old"])
    obs = make_observation(rt, seed=2)
    noise = torch.randn(rt.adapter.noise_shape(1), generator=torch.Generator().manual_seed(2))
    for steps in (2, 10):
        ours = rt.predict_chunk(obs, num_steps=steps, noise=noise).actions
        np.testing.assert_array_equal(ours, _reference(rt, obs, noise, steps, jump=False))


@pytest.mark.parametrize("steps", [2, 3, 4, 10])
def test_fast_engine_follows_the_same_jumps(snapflow_dirs, steps):
    from snapflow_ros.runtime.policy_runtime import pad_prompts_to_max_length

    eager = _runtime(snapflow_dirs["recursive"])
    pad_prompts_to_max_length(eager.preprocessor)  # the fast engine's prompt shapes
    fast = _runtime(snapflow_dirs["recursive"], engine="fast")
    obs = make_observation(eager, seed=7)
    noise = torch.randn(eager.adapter.noise_shape(1), generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(
        fast.predict_chunk(obs, num_steps=steps, noise=noise).actions,
        eager.predict_chunk(obs, num_steps=steps, noise=noise).actions,
    )


def test_euler_sample_passes_trained_jumps():
    seen = []

    def velocity(x, t, s):
        seen.append((round(t[0].item(), 6), round(s[0].item(), 6)))
        return torch.zeros_like(x)

    euler_sample(velocity, torch.zeros(1, 1, 1), 4, True, RECURSIVE_JUMPS)
    euler_sample(velocity, torch.zeros(1, 1, 1), 3, True, RECURSIVE_JUMPS)
    assert seen[:4] == [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    assert all(t == s for t, s in seen[4:]) and len(seen) == 7
