"""Unit tests of the model-agnostic SnapFlow objective."""

from __future__ import annotations

import math

import pytest
import torch
from snapflow_training.objective import (
    SnapFlowConfig,
    sample_flow_time,
    sample_snapflow_times,
    snapflow_loss,
)

from snapflow_ros.runtime.sampling import VelocityFn

B, H, D = 64, 5, 3


def _batch(seed: int = 0, batch: int = B) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    actions = torch.randn((batch, H, D), generator=g) * 2 + 0.5
    noise = torch.randn((batch, H, D), generator=g)
    return actions, noise


def _gen(seed: int = 123) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _masked_mean(x: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
    return x[sample_mask].mean()


ALL_CONFIGS = [
    SnapFlowConfig(progressive="none"),
    SnapFlowConfig(progressive="none", consistency_times="random"),
    SnapFlowConfig(progressive="ramp", ramp_steps=10),
    SnapFlowConfig(progressive="recursive"),
    SnapFlowConfig(progressive="recursive", consistency_times="random", recursive_levels=4),
    SnapFlowConfig(consistency_target="conditional", progressive="none"),
    SnapFlowConfig(consistency_target="conditional", progressive="recursive"),
]


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_fraction_of_samples_matches_alpha(alpha: float, batch: int) -> None:
    config = SnapFlowConfig(alpha=alpha)
    times = sample_snapflow_times(batch, config, _gen())
    expected_fm = math.floor(alpha * batch + 0.5)
    assert config.num_flow_matching(batch) == expected_fm
    assert int((~times.is_consistency).sum()) == expected_fm
    actions, noise = _batch(batch=batch)
    out = snapflow_loss(lambda x, t, s: torch.zeros_like(x), actions, noise, config, 0, _gen())
    assert (out.num_fm, out.num_cons) == (expected_fm, batch - expected_fm)
    # Over many batches the split is random, not tied to positions.
    hits = torch.zeros(batch)
    g = _gen(5)
    for _ in range(200):
        hits += sample_snapflow_times(batch, config, g).is_consistency.float()
    if 0 < expected_fm < batch and batch > 1:
        assert hits.min() > 0 and hits.max() < 200


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=repr)
def test_times(config: SnapFlowConfig) -> None:
    times = sample_snapflow_times(4096, config, _gen())
    fm, cons = ~times.is_consistency, times.is_consistency
    assert torch.equal(times.s[fm], times.t[fm])
    assert (times.t[fm] >= 0.001).all() and (times.t[fm] <= 1.0).all()
    t, s = times.t[cons], times.s[cons]
    assert (t <= 1.0).all() and (s >= 0.0).all() and (s < t).all()
    assert torch.allclose(times.mid, 0.5 * (times.t + times.s))
    if config.progressive == "recursive":
        jump = t - s
        levels = torch.exp2(-torch.arange(config.recursive_levels, dtype=torch.float32))
        assert torch.isclose(jump.view(-1, 1), levels.view(1, -1)).any(dim=1).all()
        assert set(torch.unique(jump).tolist()) == set(levels.tolist())
        smallest = times.smallest[cons]
        assert torch.equal(smallest, torch.isclose(jump, levels[-1]))
        # Larger jumps use the model's own half jumps, the smallest instantaneous velocities.
        assert torch.equal(times.s_first[cons][~smallest], times.mid[cons][~smallest])
        assert torch.equal(times.s_second[cons][~smallest], s[~smallest])
        if config.consistency_times == "one_step":
            j = (1.0 - t) / jump
            assert torch.allclose(j, j.round(), atol=1e-5)  # on the dyadic grid under 1 -> 0
    else:
        assert times.smallest.all()
        if config.consistency_times == "one_step":
            assert (t == 1.0).all() and (s == 0.0).all()
        else:
            assert t.std() > 0.2 and (s / t).std() > 0.2
    assert torch.equal(times.s_first[times.smallest], times.t[times.smallest])
    assert torch.equal(times.s_second[times.smallest], times.mid[times.smallest])


def test_sample_flow_time_distribution() -> None:
    t = sample_flow_time(200_000, _gen(), "cpu")
    assert t.shape == (200_000,) and t.dtype == torch.float32
    assert t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1): mean 0.6, sd 0.262 -> mean of t is 0.6 * 0.999 + 0.001, SE 0.0006.
    assert abs(float(t.mean()) - (0.6 * 0.999 + 0.001)) < 0.003
    # CDF of Beta(1.5, 1) is x**1.5: P(t <= 0.5) = (0.499 / 0.999) ** 1.5 = 0.353 (SE 0.001).
    assert abs(float((t <= 0.5).float().mean()) - (0.499 / 0.999) ** 1.5) < 0.005


def test_generator_device_is_honoured() -> None:
    t = sample_flow_time(8, _gen(), torch.device("cpu"))
    assert t.device.type == "cpu"
    assert torch.equal(t, sample_flow_time(8, _gen()))


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=repr)
def test_exact_marginal_velocity_gives_zero_loss(config: SnapFlowConfig) -> None:
    """Point-mass data per sample: ``(x - a) / t`` is the exact marginal (and average) velocity."""
    actions, noise = _batch()

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (x - actions) / t.view(-1, 1, 1)

    out = snapflow_loss(velocity, actions, noise, config, 5, _gen())
    assert float(out.flow_matching) < 1e-10
    assert float(out.consistency) < 1e-10
    assert float(out.total) < 1e-10


def test_zero_field_known_values() -> None:
    actions, noise = _batch()
    u = noise - actions
    for target in ("marginal", "conditional"):
        config = SnapFlowConfig(consistency_target=target, progressive="none", lam=0.3)
        out = snapflow_loss(lambda x, t, s: torch.zeros_like(x), actions, noise, config, 0, _gen())
        fm, cons = ~out.times.is_consistency, out.times.is_consistency
        assert torch.allclose(out.flow_matching, _masked_mean(u.square(), fm))
        expected_cons = 0.0 if target == "marginal" else _masked_mean(u.square(), cons)
        assert torch.allclose(out.consistency, torch.as_tensor(expected_cons))
        assert torch.allclose(out.total, out.flow_matching + 0.3 * out.consistency)


@pytest.mark.parametrize("k", [1.0, 0.5])
def test_linear_field_known_values(k: float) -> None:
    """``v = k x``: one-step target is ``(k - k**2/4) eps``, so the error is ``k**2/4 eps``."""
    actions, noise = _batch()
    u = noise - actions
    config = SnapFlowConfig(progressive="none", lam=0.1)
    out = snapflow_loss(lambda x, t, s: k * x, actions, noise, config, 0, _gen())
    fm, cons = ~out.times.is_consistency, out.times.is_consistency
    x_t = out.times.t.view(-1, 1, 1) * noise + (1 - out.times.t.view(-1, 1, 1)) * actions
    assert torch.allclose(out.flow_matching, _masked_mean((k * x_t - u).square(), fm))
    expected = _masked_mean((0.25 * k**2 * noise).square(), cons)
    assert torch.allclose(out.consistency, expected)
    cond = snapflow_loss(
        lambda x, t, s: k * x,
        actions,
        noise,
        SnapFlowConfig(progressive="none", consistency_target="conditional"),
        0,
        _gen(),
    )
    assert torch.allclose(cond.consistency, _masked_mean((k * noise - u).square(), cons))


def test_targets_carry_no_grad() -> None:
    """With ``v = w x`` the gradient must treat the two-step target as a constant."""
    actions, noise = _batch()
    u = noise - actions
    lam = 0.7
    config = SnapFlowConfig(progressive="none", lam=lam)
    w0 = 0.8
    w = torch.tensor(w0, requires_grad=True)
    grad_modes: list[bool] = []

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        grad_modes.append(torch.is_grad_enabled())
        return w * x

    out = snapflow_loss(velocity, actions, noise, config, 0, _gen())
    assert grad_modes == [False, False, True]  # targets first, then the prediction
    assert out.total.requires_grad
    assert not out.flow_matching.requires_grad and not out.consistency.requires_grad
    (grad,) = torch.autograd.grad(out.total, w)

    fm, cons = ~out.times.is_consistency, out.times.is_consistency
    x_t = out.times.t.view(-1, 1, 1) * noise + (1 - out.times.t.view(-1, 1, 1)) * actions
    target = (w0 - 0.25 * w0**2) * noise  # constant
    stop_grad = 2 * _masked_mean((w0 * x_t - u) * x_t, fm) + lam * 2 * _masked_mean(
        (w0 * noise - target) * noise, cons
    )
    # If the target were differentiated: residual (w**2/4) eps, d/dw = (w/2) eps.
    full_grad = 2 * _masked_mean((w0 * x_t - u) * x_t, fm) + lam * 2 * _masked_mean(
        (0.25 * w0**2 * noise) * (0.5 * w0 * noise), cons
    )
    assert torch.allclose(grad, stop_grad, rtol=1e-5)
    assert not torch.allclose(grad, full_grad, rtol=1e-2)


def test_velocity_called_on_full_batches_only() -> None:
    actions, noise = _batch()
    for config, calls in [
        (SnapFlowConfig(), 3),
        (SnapFlowConfig(progressive="none"), 3),
        (SnapFlowConfig(alpha=1.0), 1),
        (SnapFlowConfig(progressive="none", consistency_target="conditional"), 1),
        (SnapFlowConfig(progressive="recursive", consistency_target="conditional"), 3),
    ]:
        shapes: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []

        def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            shapes.append((tuple(x.shape), tuple(t.shape), tuple(s.shape)))  # noqa: B023
            return x * 0.5

        snapflow_loss(velocity, actions, noise, config, 0, _gen())
        assert shapes == [((B, H, D), (B,), (B,))] * calls, config


def test_padded_steps_are_excluded() -> None:
    actions, noise = _batch()
    g = _gen(9)
    pad = torch.rand((B, H), generator=g) < 0.3
    pad[:, -1] = True
    pad[0] = True  # one sample entirely padded
    config = SnapFlowConfig(progressive="none", lam=0.5)
    w = torch.tensor(0.8, requires_grad=True)

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return w * x  # elementwise: padded values cannot leak into valid elements

    out = snapflow_loss(velocity, actions, noise, config, 0, _gen(), action_is_pad=pad)
    (grad,) = torch.autograd.grad(out.total, w)
    garbage = torch.where(pad.unsqueeze(-1), torch.full_like(actions, 1e6), actions)
    out2 = snapflow_loss(velocity, garbage, noise, config, 0, _gen(), action_is_pad=pad)
    (grad2,) = torch.autograd.grad(out2.total, w)
    assert torch.equal(out.total, out2.total) and torch.equal(grad, grad2)
    assert math.isfinite(float(out2.total.detach()))

    # Expected values: means over the valid elements of each term's own samples.
    u = noise - actions
    x_t = out.times.t.view(-1, 1, 1) * noise + (1 - out.times.t.view(-1, 1, 1)) * actions
    valid = ~pad.unsqueeze(-1).expand(B, H, D)
    fm = (~out.times.is_consistency).view(B, 1, 1).expand(B, H, D)
    cons = ~fm
    w0 = 0.8
    exp_fm = ((w0 * x_t - u).square())[valid & fm].mean()
    exp_cons = ((0.25 * w0**2 * noise).square())[valid & cons].mean()
    assert torch.allclose(out.flow_matching, exp_fm)
    assert torch.allclose(out.consistency, exp_cons)
    unpadded = snapflow_loss(velocity, actions, noise, config, 0, _gen())
    assert not torch.allclose(unpadded.total, out.total)


def test_fully_padded_or_empty_terms_are_zero_not_nan() -> None:
    actions, noise = _batch()
    pad = torch.ones((B, H), dtype=torch.bool)
    out = snapflow_loss(lambda x, t, s: x, actions, noise, SnapFlowConfig(), 0, _gen(), pad)
    assert float(out.total) == 0.0
    out = snapflow_loss(lambda x, t, s: x, actions, noise, SnapFlowConfig(alpha=1.0), 0, _gen())
    assert out.num_cons == 0 and float(out.consistency) == 0.0
    assert torch.allclose(out.total, out.flow_matching)


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=repr)
def test_deterministic_given_generator(config: SnapFlowConfig) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(D + 2, 16), torch.nn.Tanh(), torch.nn.Linear(16, D))

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ts = torch.stack([t, s], -1).view(-1, 1, 2).expand(-1, x.shape[1], 2)
        return model(torch.cat([x, ts], -1))

    actions, noise = _batch()
    a = snapflow_loss(velocity, actions, noise, config, 3, _gen(7))
    b = snapflow_loss(velocity, actions, noise, config, 3, _gen(7))
    c = snapflow_loss(velocity, actions, noise, config, 3, _gen(8))
    assert torch.equal(a.total, b.total) and torch.equal(a.times.t, b.times.t)
    assert not torch.equal(a.times.t, c.times.t)
    # Resuming from a saved generator state reproduces the next step exactly.
    g = _gen(7)
    snapflow_loss(velocity, actions, noise, config, 0, g)
    state = g.get_state()
    nxt = snapflow_loss(velocity, actions, noise, config, 1, g)
    resumed = snapflow_loss(velocity, actions, noise, config, 1, torch.Generator().set_state(state))
    assert torch.equal(nxt.total, resumed.total)


def test_generator_advances_identically_for_every_config() -> None:
    draws = []
    for config in [*ALL_CONFIGS, SnapFlowConfig(alpha=0.0), SnapFlowConfig(alpha=1.0)]:
        g = _gen(3)
        sample_snapflow_times(B, config, g)
        draws.append(torch.rand(4, generator=g))
    assert all(torch.equal(d, draws[0]) for d in draws)


def test_recursive_with_one_level_equals_none() -> None:
    actions, noise = _batch()

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return torch.sin(x) * t.view(-1, 1, 1) + s.view(-1, 1, 1)

    a = snapflow_loss(velocity, actions, noise, SnapFlowConfig(progressive="none"), 0, _gen())
    cfg = SnapFlowConfig(progressive="recursive", recursive_levels=1)
    b = snapflow_loss(velocity, actions, noise, cfg, 0, _gen())
    assert torch.equal(a.total, b.total)


def test_ramp_schedule() -> None:
    config = SnapFlowConfig(progressive="ramp", lam=0.2, ramp_steps=100)
    weights = [config.consistency_weight(s) for s in (0, 25, 50, 100, 1000)]
    assert weights == pytest.approx([0.0, 0.05, 0.1, 0.2, 0.2])
    for prog in ("none", "recursive"):
        flat = SnapFlowConfig(progressive=prog, lam=0.2, ramp_steps=100)
        assert flat.consistency_weight(0) == flat.consistency_weight(50) == 0.2
    actions, noise = _batch()
    for step, lam in [(0, 0.0), (50, 0.1), (200, 0.2)]:
        out = snapflow_loss(lambda x, t, s: 0.5 * x, actions, noise, config, step, _gen())
        assert out.consistency_weight == pytest.approx(lam)
        assert out.consistency > 0
        assert torch.allclose(out.total, out.flow_matching + lam * out.consistency)
    with pytest.raises(ValueError, match="step"):
        config.consistency_weight(-1)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_mode_is_not_changed(mode: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, D))
    model.train(mode == "train")
    seen: list[bool] = []

    def velocity(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        seen.append(model.training)
        return model(x)

    actions, noise = _batch()
    snapflow_loss(velocity, actions, noise, SnapFlowConfig(), 0, _gen())
    assert seen == [mode == "train"] * 3
    assert model.training == (mode == "train")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -0.1},
        {"alpha": 1.5},
        {"alpha": float("nan")},
        {"alpha": "0.5"},
        {"alpha": True},
        {"lam": -1.0},
        {"lam": float("inf")},
        {"consistency_target": "teacher"},
        {"progressive": "linear"},
        {"consistency_times": "uniform"},
        {"ramp_steps": 0},
        {"ramp_steps": 2.5},
        {"recursive_levels": 0},
        {"target_source": "frozen"},
        {"ema_decay": 1.0},
        {"ema_decay": -0.1},
        {"flow_target": "conditional"},
        {"flow_target": "teacher", "target_source": "ema"},
    ],
)
def test_invalid_config_raises(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        SnapFlowConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_inputs_raise() -> None:
    actions, noise = _batch()
    zero: VelocityFn = lambda x, t, s: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError, match="actions"):
        snapflow_loss(zero, actions[:, 0], noise[:, 0], SnapFlowConfig())
    with pytest.raises(ValueError, match="noise"):
        snapflow_loss(zero, actions, noise[:, :-1], SnapFlowConfig())
    with pytest.raises(ValueError, match="action_is_pad"):
        snapflow_loss(zero, actions, noise, SnapFlowConfig(), 0, None, torch.zeros((B, H)))
    with pytest.raises(ValueError, match="action_is_pad"):
        pad = torch.zeros((B, H + 1), dtype=torch.bool)
        snapflow_loss(zero, actions, noise, SnapFlowConfig(), 0, None, pad)


def test_trained_jumps_follow_the_objective() -> None:
    assert SnapFlowConfig().trained_jumps() == [1.0, 0.5, 0.25]
    assert SnapFlowConfig(recursive_levels=5).trained_jumps() == [1.0, 0.5, 0.25, 0.125, 0.0625]
    assert SnapFlowConfig(progressive="none").trained_jumps() == [1.0]
    assert SnapFlowConfig(progressive="ramp").trained_jumps() == [1.0]
    assert SnapFlowConfig(progressive="none", consistency_times="random").trained_jumps() is None
    assert SnapFlowConfig(alpha=1.0).trained_jumps() == []
    # every trained jump is sampled by the objective, and nothing else
    times = sample_snapflow_times(4096, SnapFlowConfig(), _gen())
    jumps = (times.t - times.s)[times.is_consistency]
    assert sorted(set(jumps.tolist())) == sorted(SnapFlowConfig().trained_jumps())


def test_target_velocity_makes_the_targets_only() -> None:
    """A separate target network changes the consistency term, never the prediction."""
    actions, noise = _batch()
    config = SnapFlowConfig(lam=0.5)
    own = snapflow_loss(lambda x, t, s: 0.5 * x, actions, noise, config, 0, _gen())
    calls: list[str] = []

    def target(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        calls.append("target")
        return torch.zeros_like(x)

    other = snapflow_loss(
        lambda x, t, s: 0.5 * x, actions, noise, config, 0, _gen(), target_velocity=target
    )
    assert calls == ["target", "target"]
    assert torch.equal(other.flow_matching, own.flow_matching)
    cons = other.times.is_consistency
    x_t = other.times.t.view(-1, 1, 1) * noise + (1 - other.times.t.view(-1, 1, 1)) * actions
    torch.testing.assert_close(other.consistency, _masked_mean((0.5 * x_t).square(), cons))


@pytest.mark.parametrize("progressive", ["none", "recursive"])
def test_instant_velocity_serves_the_smallest_level(progressive: str) -> None:
    """With ``instant_velocity`` (e.g. a frozen teacher) the smallest level's instantaneous
    velocities come from it (asked with s = t); larger levels still use the model's jumps."""
    actions, noise = _batch()
    config = SnapFlowConfig(progressive=progressive, lam=1.0)
    seen: list[tuple[str, bool]] = []

    def model(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        seen.append(("model", torch.is_grad_enabled()))
        return x + 0.0 * s.view(-1, 1, 1)

    def teacher(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        seen.append(("teacher", bool(torch.equal(t, s))))
        return 3.0 * x

    out = snapflow_loss(model, actions, noise, config, 0, _gen(), instant_velocity=teacher)
    cons, smallest = out.times.is_consistency, out.times.smallest
    if progressive == "none":  # every target is the teacher's two-step Euler
        assert seen == [("teacher", True), ("teacher", True), ("model", True)]
        target = (3.0 - 0.25 * 9.0) * noise  # v = 3x from x_1 = eps: two Euler half steps
        torch.testing.assert_close(
            out.consistency, _masked_mean((noise - target).square(), cons), rtol=1e-5, atol=0
        )
    else:
        assert ("teacher", True) in seen and seen[-1] == ("model", True)
        assert (cons & smallest).any() and (cons & ~smallest).any()


def test_flow_target_teacher_regresses_on_the_teacher_velocity() -> None:
    """``flow_target="teacher"``: the flow-matching samples' target is the frozen teacher's
    velocity at the same (x_t, t) (asked with s = t, without grad, before the prediction);
    the consistency term is unchanged."""
    actions, noise = _batch()
    calls: list[tuple[str, bool, bool]] = []

    def model(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        calls.append(("model", torch.is_grad_enabled(), bool(torch.equal(t, s))))
        return 0.5 * x

    def teacher(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        calls.append(("teacher", torch.is_grad_enabled(), bool(torch.equal(t, s))))
        return 0.5 * x  # the model equals the teacher: the flow-matching term is exactly 0

    data = snapflow_loss(model, actions, noise, SnapFlowConfig(), 0, _gen())
    calls.clear()
    held = snapflow_loss(
        model,
        actions,
        noise,
        SnapFlowConfig(flow_target="teacher"),
        0,
        _gen(),
        flow_velocity=teacher,
    )
    assert calls[0] == ("teacher", False, True) and calls[-1] == ("model", True, False)
    assert data.flow_matching > 0 and held.flow_matching == 0
    assert torch.equal(held.consistency, data.consistency)
    with pytest.raises(ValueError, match="flow_velocity"):
        snapflow_loss(model, actions, noise, SnapFlowConfig(flow_target="teacher"), 0, _gen())


def test_needs_teacher() -> None:
    assert not SnapFlowConfig().needs_teacher
    assert SnapFlowConfig(flow_target="teacher").needs_teacher
    assert SnapFlowConfig(target_source="teacher").needs_teacher
