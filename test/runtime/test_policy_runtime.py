"""PolicyRuntime on real (tiny) LeRobot SmolVLA and pi0.5 policies."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch

from snapflow_ros.runtime import (
    NonFiniteOutputError,
    ObservationError,
    PolicyRuntime,
    PolicyRuntimeError,
    RuntimeOptions,
)

from .helpers import make_observation, make_snapflow_copy


@pytest.fixture(scope="module")
def runtime(tiny_checkpoint):
    return PolicyRuntime(tiny_checkpoint, RuntimeOptions(device="cpu", seed=0))


def _lerobot_chunk(runtime: PolicyRuntime, obs, noise: torch.Tensor, steps: int) -> np.ndarray:
    """The same chunk computed through LeRobot's own predict_action_chunk."""
    images = runtime.validate(obs)
    batch = runtime._to_batch(obs, images)
    policy = runtime.policy
    with torch.inference_mode():
        if runtime.policy_type == "smolvla":
            old = policy.config.num_steps
            policy.config.num_steps = steps
            try:
                actions = policy.predict_action_chunk(batch, noise=noise.clone())
            finally:
                policy.config.num_steps = old
        else:
            actions = policy.predict_action_chunk(batch, noise=noise.clone(), num_steps=steps)
        return runtime.postprocessor(actions)[0].numpy()


@pytest.mark.parametrize("steps", [1, 10])
def test_matches_lerobot_predict_action_chunk_exactly(runtime, steps):
    obs = make_observation(runtime, seed=3)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(5))
    ours = runtime.predict_chunk(obs, num_steps=steps, noise=noise.clone())
    theirs = _lerobot_chunk(runtime, obs, noise, steps)
    np.testing.assert_array_equal(ours.actions, theirs)


class Timed:
    """Wraps a callable: how often it was called and the seconds spent in it."""

    def __init__(self, fn) -> None:
        self.fn, self.calls, self.seconds = fn, 0, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_chunk_shape_finite_and_timed(runtime, steps, monkeypatch):
    """Each stage's time contains the work it names, timed separately around that work
    (and the denoise stage runs one velocity pass per step)."""
    work = {
        "preprocess": [Timed(runtime.validate), Timed(runtime._to_batch)],
        "prefix": [Timed(runtime._encode_prefix)],
        "denoise": [Timed(runtime.adapter.velocity)],
        "postprocess": [Timed(runtime.postprocessor)],
    }
    for owner, name, timed in (
        (runtime, "validate", work["preprocess"][0]),
        (runtime, "_to_batch", work["preprocess"][1]),
        (runtime, "_encode_prefix", work["prefix"][0]),
        (runtime.adapter, "velocity", work["denoise"][0]),
        (runtime, "postprocessor", work["postprocess"][0]),
    ):
        monkeypatch.setattr(owner, name, timed)
    obs = make_observation(runtime, seed=steps)
    chunk = runtime.predict_chunk(obs, num_steps=steps)
    assert chunk.actions.shape == (runtime.chunk_size, runtime.action_dim)
    assert chunk.actions.dtype == np.float32
    assert np.all(np.isfinite(chunk.actions))
    assert chunk.num_steps == steps
    assert chunk.stamp == obs.stamp
    assert work["denoise"][0].calls == steps
    t = chunk.timings.as_dict()
    for stage, parts in work.items():
        assert all(part.calls >= 1 for part in parts), stage
        assert t[stage] >= sum(part.seconds for part in parts), (stage, t)


def test_default_steps_come_from_the_config(runtime):
    assert not runtime.is_snapflow
    assert runtime.default_num_steps == runtime.configured_num_steps == 10
    assert runtime.predict_chunk(make_observation(runtime)).num_steps == 10


def test_one_step_differs_from_ten_steps(runtime):
    obs = make_observation(runtime, seed=4)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(2))
    one = runtime.predict_chunk(obs, num_steps=1, noise=noise)
    ten = runtime.predict_chunk(obs, num_steps=10, noise=noise)
    assert not np.allclose(one.actions, ten.actions)


def test_seeded_noise_is_reproducible(runtime, tiny_checkpoint):
    obs = make_observation(runtime, seed=6)
    runtime.reset_noise(42)
    first = [runtime.predict_chunk(obs, num_steps=2).actions for _ in range(2)]
    runtime.reset_noise(42)
    second = [runtime.predict_chunk(obs, num_steps=2).actions for _ in range(2)]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # fresh noise per call


def test_short_camera_names_are_accepted(runtime):
    obs = make_observation(runtime, seed=1)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(0))
    full = runtime.predict_chunk(obs, num_steps=1, noise=noise).actions
    obs.images = {k.removeprefix("observation.images."): v for k, v in obs.images.items()}
    short = runtime.predict_chunk(obs, num_steps=1, noise=noise).actions
    np.testing.assert_array_equal(full, short)


def test_save_load_round_trip_is_bit_exact(runtime, tiny_checkpoint, tmp_path):
    out = tmp_path / "resaved"
    runtime.policy.save_pretrained(out)
    runtime.preprocessor.save_pretrained(out)
    runtime.postprocessor.save_pretrained(out)
    for extra in ("vlm", "tokenizer", "snapflow_tiny_arch.json"):
        src = tiny_checkpoint / extra
        if src.is_dir():
            shutil.copytree(src, out / extra)
        elif src.is_file():
            shutil.copy(src, out / extra)
    again = PolicyRuntime(out, RuntimeOptions(device="cpu", warmup=0))
    ours, theirs = runtime.policy.state_dict(), again.policy.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    obs = make_observation(runtime, seed=9)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(9))
    np.testing.assert_array_equal(
        runtime.predict_chunk(obs, num_steps=3, noise=noise).actions,
        again.predict_chunk(obs, num_steps=3, noise=noise).actions,
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.images.pop(next(iter(o.images))), "missing cameras"),
        (
            lambda o: o.images.__setitem__(
                "observation.images.top", o.images[next(iter(o.images))]
            ),
            "unknown camera",
        ),
        (
            lambda o: o.images.__setitem__(next(iter(o.images)), np.zeros((48, 64, 3), np.float32)),
            "uint8",
        ),
        (
            lambda o: o.images.__setitem__(next(iter(o.images)), np.zeros((48, 64, 4), np.uint8)),
            "HxWx3",
        ),
        (
            lambda o: o.images.__setitem__(next(iter(o.images)), np.zeros((48, 64), np.uint8)),
            "HxWx3",
        ),
        (lambda o: setattr(o, "state", np.zeros(3, np.float32)), "state: expected shape"),
        (lambda o: setattr(o, "state", np.full(8, np.nan, np.float32)), "NaN"),
        (lambda o: setattr(o, "state", np.array([1.0, np.inf] + [0.0] * 6)), "NaN/inf"),
        (lambda o: setattr(o, "task", None), "task must be a string"),
    ],
)
def test_bad_observations_raise_clear_errors_and_runtime_recovers(runtime, mutate, message):
    obs = make_observation(runtime)
    mutate(obs)
    with pytest.raises(ObservationError, match=message):
        runtime.predict_chunk(obs)
    good = runtime.predict_chunk(make_observation(runtime), num_steps=1)
    assert np.all(np.isfinite(good.actions))


def test_a_non_finite_output_is_not_blamed_on_the_observation(runtime):
    obs = make_observation(runtime)
    runtime.validate(obs)  # a valid observation
    layer = runtime.policy.model.action_out_proj
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.fill_(float("nan"))
        with pytest.raises(NonFiniteOutputError, match="NaN/inf actions") as info:
            runtime.predict_chunk(obs, num_steps=1)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)
    assert not isinstance(info.value, ObservationError)
    assert isinstance(info.value, PolicyRuntimeError) and isinstance(info.value, ValueError)
    assert info.value.code == "non_finite_output"
    assert np.all(np.isfinite(runtime.predict_chunk(obs, num_steps=1).actions))


@pytest.mark.parametrize("steps", [0, -1, 1.5, True])
def test_bad_step_counts_are_rejected(runtime, steps):
    with pytest.raises(ValueError, match="num_steps"):
        runtime.predict_chunk(make_observation(runtime), num_steps=steps)


def test_zero_initialised_target_time_gives_identical_outputs(runtime, tiny_checkpoint, tmp_path):
    snap_dir = make_snapflow_copy(runtime, tiny_checkpoint, tmp_path / "snap")
    snap = PolicyRuntime(snap_dir, RuntimeOptions(device="cpu", warmup=0))
    assert snap.is_snapflow and snap.default_num_steps == 1
    obs = make_observation(runtime, seed=11)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(1))
    for steps in (1, 4, 10):
        np.testing.assert_array_equal(
            snap.predict_chunk(obs, num_steps=steps, noise=noise).actions,
            runtime.predict_chunk(obs, num_steps=steps, noise=noise).actions,
        )
    assert snap.predict_chunk(obs, noise=noise).num_steps == 1


def test_trained_target_time_embedding_changes_the_velocity(runtime, tiny_checkpoint, tmp_path):
    snap_dir = make_snapflow_copy(runtime, tiny_checkpoint, tmp_path / "snap", scale=0.5)
    snap = PolicyRuntime(snap_dir, RuntimeOptions(device="cpu", warmup=0))
    obs = make_observation(runtime, seed=12)
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(1))
    one_snap = snap.predict_chunk(obs, num_steps=1, noise=noise).actions
    one_plain = runtime.predict_chunk(obs, num_steps=1, noise=noise).actions
    assert not np.allclose(one_snap, one_plain)
