"""The fast and compiled engines against the eager reference, on tiny SmolVLA and pi0.5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from snapflow_ros.runtime import CheckpointError, PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.fast_path import prefix_restorer
from snapflow_ros.runtime.policy_runtime import pad_prompts_to_max_length

from .helpers import make_observation, make_snapflow_copy

SHORT, LONG = "pick", "pick up the red block and put it in the bowl on the left"


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoint, tmp_path_factory):
    """The plain tiny checkpoint and a SnapFlow copy with a trained-looking embedding."""
    plain = PolicyRuntime(tiny_checkpoint, RuntimeOptions(device="cpu", warmup=0))
    snap = make_snapflow_copy(
        plain, tiny_checkpoint, tmp_path_factory.mktemp("fast") / "snap", scale=0.5
    )
    return {"plain": tiny_checkpoint, "snapflow": snap}


def _runtime(path, **kw) -> PolicyRuntime:
    return PolicyRuntime(path, RuntimeOptions(device="cpu", warmup=0, **kw))


def _noise(rt: PolicyRuntime, seed: int = 1) -> torch.Tensor:
    return torch.randn(rt.adapter.noise_shape(1), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["plain", "snapflow"])
def test_fast_engine_is_bit_identical_to_eager(checkpoints, kind):
    eager = _runtime(checkpoints[kind])
    pad_prompts_to_max_length(eager.preprocessor)  # same prompt shapes as the fast engine
    fast = _runtime(checkpoints[kind], engine="fast")
    for task in (SHORT, LONG):
        obs = make_observation(eager, seed=3, task=task)
        for steps in (1, 2, 10):
            noise = _noise(eager)
            np.testing.assert_array_equal(
                fast.predict_chunk(obs, num_steps=steps, noise=noise).actions,
                eager.predict_chunk(obs, num_steps=steps, noise=noise).actions,
            )


def test_fast_engine_in_bfloat16_stores_matrix_weights_once_and_matches_eager(checkpoints):
    eager = _runtime(checkpoints["snapflow"], dtype="bfloat16")  # autocast over fp32 weights
    fp32 = _runtime(checkpoints["snapflow"])
    for rt in (eager, fp32):
        pad_prompts_to_max_length(rt.preprocessor)
    fast = _runtime(checkpoints["snapflow"], dtype="bfloat16", engine="fast")
    linear = [m for m in fast.policy.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    assert fast.adapter.target_time.proj.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in eager.policy.parameters())
    obs = make_observation(eager, seed=2)
    for steps in (1, 10):
        noise = _noise(eager)
        bf16 = fast.predict_chunk(obs, num_steps=steps, noise=noise).actions
        autocast = eager.predict_chunk(obs, num_steps=steps, noise=noise).actions
        reference = fp32.predict_chunk(obs, num_steps=steps, noise=noise).actions
        scale = np.abs(reference).max()
        if fast.policy_type == "smolvla":  # autocast casts exactly these weights: same numbers
            np.testing.assert_array_equal(bf16, autocast)
        else:  # LeRobot's PI05 also runs its embeddings in bf16 when its weights are bf16
            assert np.abs(bf16 - autocast).max() < 0.01 * scale
        assert not np.array_equal(autocast, reference)  # autocast did run in bfloat16
        assert np.abs(bf16 - reference).max() < 0.02 * scale


def test_fast_engine_matches_unpadded_eager_within_tolerance(checkpoints):
    eager = _runtime(checkpoints["snapflow"])
    fast = _runtime(checkpoints["snapflow"], engine="fast")
    obs = make_observation(eager, seed=4, task=SHORT)
    for steps in (1, 10):
        noise = _noise(eager)
        np.testing.assert_allclose(
            fast.predict_chunk(obs, num_steps=steps, noise=noise).actions,
            eager.predict_chunk(obs, num_steps=steps, noise=noise).actions,
            atol=1e-5,
            rtol=0,
        )


def test_fast_engine_pads_every_prompt_to_one_length(checkpoints):
    fast = _runtime(checkpoints["plain"], engine="fast")
    shapes = set()
    for task in (SHORT, LONG, ""):
        obs = make_observation(fast, task=task)
        batch = fast._to_batch(obs, fast.validate(obs))
        shapes.add(tuple(batch["observation.language.tokens"].shape))
    assert len(shapes) == 1, shapes


def test_step_tables_are_built_once_per_schedule(checkpoints):
    fast = _runtime(checkpoints["snapflow"], engine="fast")
    obs = make_observation(fast)
    fast.predict_chunk(obs, num_steps=3)
    tables = dict(fast._fast._tables)
    fast.predict_chunk(make_observation(fast, seed=5), num_steps=3)
    assert fast._fast._tables == tables and len(tables) == 1
    (table,) = tables.values()
    assert len(table.conds) == 3 and table.dt == pytest.approx(-1 / 3)
    fast.predict_chunk(obs, num_steps=1)
    assert len(fast._fast._tables) == 2


def test_sampling_leaves_the_prefix_cache_as_encoded(checkpoints):
    fast = _runtime(checkpoints["plain"], engine="fast")
    obs = make_observation(fast)
    with torch.inference_mode():
        cache = fast.adapter.encode_prefix(
            fast.adapter.model_inputs(fast._to_batch(obs, fast.validate(obs)))
        )
        before = [(layer.keys, layer.values.clone()) for layer in cache.past_key_values.layers]
        fast._fast.sample(cache, fast._fast.prepare(cache), _noise(fast), 4)
        for layer, (keys, values) in zip(cache.past_key_values.layers, before, strict=True):
            assert layer.keys is keys
            assert torch.equal(layer.values, values)


def test_prefix_restorer_crops_caches_it_cannot_restore():
    class Croppable:
        def __init__(self):
            self.layers = [object()]
            self.cropped_to = None

        def crop(self, n):
            self.cropped_to = n

    cache = Croppable()
    prefix_restorer(cache, 7)()
    assert cache.cropped_to == 7
    prefix_restorer(None, 7)()  # no cache: nothing to do


def test_compiled_engine_agrees_and_compiles_each_pass_once(checkpoints):
    torch._dynamo.reset()
    counters.clear()
    fast = _runtime(checkpoints["snapflow"], engine="fast")
    compiled = _runtime(checkpoints["snapflow"], engine="compiled", compile_prefix=True)
    for task in (SHORT, LONG, "x"):
        obs = make_observation(fast, seed=6, task=task)
        for steps in (1, 3):
            noise = _noise(fast)
            np.testing.assert_allclose(
                compiled.predict_chunk(obs, num_steps=steps, noise=noise).actions,
                fast.predict_chunk(obs, num_steps=steps, noise=noise).actions,
                atol=1e-5,
                rtol=0,
            )
    # one graph for the prefix encoder, one for the expert pass: new prompts and step counts
    # reuse them (static shapes, the same prefix tensors at every step)
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert compiled.describe()["engine"] == "compiled"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"engine": "turbo"}, "unknown engine"),
        ({"engine": "compiled", "compile_mode": "fastest"}, "unknown compile_mode"),
        ({"engine": "fast", "compile_prefix": True}, "compile_prefix needs"),
        ({"dtype": "float16"}, "unknown dtype"),
    ],
)
def test_bad_engine_options_are_rejected_before_loading(options, message):
    with pytest.raises(CheckpointError, match=message):
        PolicyRuntime("/nonexistent/checkpoint", RuntimeOptions(device="cpu", **options))
