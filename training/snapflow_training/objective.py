"""Model-agnostic SnapFlow self-distillation objective.

Works on any :data:`~snapflow_ros.runtime.sampling.VelocityFn` ``v(x_t, t, s)`` (LeRobot
convention: t=1 noise, t=0 data, ``x_t = t*eps + (1-t)*a``, conditional velocity
``u = eps - a``). Each batch is split, by a per-sample mask, into

* flow-matching samples: prediction ``v(x_t, t, t)``, target ``u``;
* consistency samples: prediction ``v(x_t, t, s)`` (s < t), target made without grad from the
  model's own predictions with a two-step Euler shortcut through the midpoint ``m = (t+s)/2``.

The velocity function is only ever called on the full batch (B, H, D), with per-sample times,
so a wrapped VLA that caches its observation prefix sees static shapes. Three calls are made
per step when there are consistency samples with model-made targets (one with grad, two
without), otherwise one. The objective never changes the model's train/eval mode: with dropout
in train mode the targets are stochastic too, which is the caller's choice.

All randomness comes from ``generator`` (drawn on its device, then moved), so a step is
reproducible bit for bit given the generator state, which makes exact resume possible.

Data parallel (:class:`BatchShard`): each process holds a contiguous slice of one global batch.
Every process draws the times of the whole global batch from the same generator state and
keeps its slice, and the loss is normalised by the global element counts, so N processes x
batch B compute the loss of one process x batch N*B (up to float summation order).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal, get_args

import torch

from snapflow_ros.runtime.sampling import VelocityFn

ConsistencyTarget = Literal["marginal", "conditional"]
Progressive = Literal["none", "ramp", "recursive"]
ConsistencyTimes = Literal["one_step", "random"]
TargetSource = Literal["student", "ema", "teacher"]
FlowTarget = Literal["data", "teacher"]


def _check_int(name: str, value: object, minimum: int) -> None:
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= minimum  # type: ignore[arg-type]
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_choice(name: str, value: object, kind: object) -> None:
    choices = get_args(kind)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class SnapFlowConfig:
    """Hyper-parameters of the SnapFlow objective.

    alpha: fraction of flow-matching samples in each batch (exactly ``round(alpha * B)``,
        half rounded up); the rest are consistency samples.
    lam: consistency weight, ``total = L_fm + lam * L_cons`` (each term is the mean squared
        error over the valid elements of its own samples).
    consistency_target: ``"marginal"`` builds the two-step target from the model's own
        velocities; ``"conditional"`` (ablation) replaces the instantaneous velocities in it
        with ``eps - a`` (with ``"recursive"``: only at the smallest level).
    progressive: reading of the paper's "progressive" (SNAPFLOW.md §4):
        ``"none"``: plain SnapFlow, every jump t -> s is trained towards the two-step Euler
        shortcut of the instantaneous velocities at t and at the midpoint;
        ``"ramp"``: as ``"none"`` with lam ramping linearly from 0 to ``lam`` over
        ``ramp_steps`` (the consistency fraction stays fixed, so compute per step is constant);
        ``"recursive"`` (shortcut-model style): jump sizes ``d = 2**-k``, k uniform in
        ``0 .. recursive_levels - 1``; a jump t -> s = t - d is trained towards the average of
        the model's own jumps t -> m and m -> s, except at the smallest level, whose halves
        are instantaneous velocities (``recursive_levels=1`` equals ``"none"``).
        Default ``"recursive"``, chosen by measurement (``python -m snapflow_training.toy``,
        10 seeds, MMD² of one-step samples to held-out data, lower is better): recursive
        0.031 ± 0.009, none 0.091 ± 0.017, ramp 0.118 ± 0.017; 10-step teacher 0.0037,
        4-step 0.018, 2-step 0.125, naive one step 1.06. Why: the target of ``"none"`` is the
        model's own TWO-step Euler sampler, so its one step can at best reproduce that (it
        lands at the 2-step teacher's level); ``"recursive"`` chains the shortcut over a
        ``2**-recursive_levels`` grid and lands near the 4-step teacher. The cost per step is
        the same (three calls). ``"ramp"`` only delays the consistency term.
    ramp_steps: length of the ramp for ``progressive="ramp"`` (optimizer steps).
    consistency_times: ``"one_step"``: consistency samples jump t=1 -> s=0 (what one-step
        inference needs); with ``"recursive"`` they use the dyadic grid under that jump
        (t = 1 - j*d, s = t - d). ``"random"``: t ~ U(0, 1], s ~ U[0, t) (``"recursive"``:
        t ~ U(d, 1], s = t - d).
    recursive_levels: number of jump sizes for ``progressive="recursive"``; default 3 (toy,
        4 seeds, one-step MMD²: 2 levels 0.040 ± 0.014, 3: 0.031 ± 0.012, 4: 0.032 ± 0.012,
        5: 0.034 ± 0.012).
    target_source: which network makes the no-grad targets: ``"student"`` (the model being
        trained, as in the paper), ``"ema"`` (an exponential moving average of it, decay
        ``ema_decay``, as shortcut models do) or ``"teacher"`` (the frozen teacher gives the
        instantaneous velocities of the smallest level; the larger jumps, which the teacher
        cannot make, come from the student). The caller provides the networks
        (:func:`snapflow_loss`'s ``target_velocity`` / ``instant_velocity``).
    ema_decay: decay of the EMA for ``target_source="ema"``.
    flow_target: what the flow-matching samples regress on: ``"data"``, the conditional
        velocity ``eps - a`` (LeRobot's training loss); ``"teacher"``, the frozen teacher's
        instantaneous velocity at the same ``(x_t, t)`` (no grad; the caller provides it as
        :func:`snapflow_loss`'s ``flow_velocity``). ``"data"`` keeps training the ``s = t``
        branch on noisy targets, so it drifts away from the teacher it started as (and every
        jump's target is built from it); ``"teacher"`` holds it at the teacher. The
        objective's own default is ``"data"`` (the plain loss: no teacher network needed, for
        any velocity function); ``distill`` defaults to ``"teacher"``, chosen by measurement
        (LIBERO proof teacher, libero_object task 0, 1000 steps, lr 1e-3; energy distance to
        the 10-step teacher over its floor at 1 / 2 / 4 / 10 steps: data 2.17 / 2.00 / 2.08 /
        2.21, teacher 1.82 / 1.52 / 1.46 / 1.50; toy, 3 seeds, lam 3: one step 1.07 -> 1.05).
        It costs one more no-grad call per step and a copy of the trainable weights
        (docs/distillation.md, "More steps of the student").

    Defaults, chosen on the multimodal benchmark and the toy (3 seeds each; tables in
    docs/distillation.md): ``lam=3`` (the paper's reading is 0.1). On the benchmark (tiny
    SmolVLA, 300 steps) the one-step energy distance to the 10-step teacher falls from 4.3x
    its floor (lam 0.1) to 2.8x (lam 1) and 2.5x (lam 3), the mode commitment rises from 0.39
    to 0.61 and 0.71 (teacher 0.86); lam 10 diverges from the teacher (17x). On the toy lam 1
    and 3 are best (MMD² 0.016 / 0.015 vs 0.034 at lam 0.1, 0.027 at lam 10). alpha 0.5,
    3 levels, one-step times and the student's own targets stay: alpha 0.25, 5 levels, EMA
    or frozen-teacher targets were not better on either.
    """

    alpha: float = 0.5
    lam: float = 3.0
    consistency_target: ConsistencyTarget = "marginal"
    progressive: Progressive = "recursive"
    ramp_steps: int = 1000
    consistency_times: ConsistencyTimes = "one_step"
    recursive_levels: int = 3
    target_source: TargetSource = "student"
    ema_decay: float = 0.999
    flow_target: FlowTarget = "data"

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"alpha must be a float in [0, 1], got {self.alpha!r}")
        if not (math.isfinite(self.alpha) and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"alpha must be a float in [0, 1], got {self.alpha!r}")
        if isinstance(self.lam, bool) or not isinstance(self.lam, int | float):
            raise ValueError(f"lam must be a finite float >= 0, got {self.lam!r}")
        if not (math.isfinite(self.lam) and self.lam >= 0.0):
            raise ValueError(f"lam must be a finite float >= 0, got {self.lam!r}")
        _check_choice("consistency_target", self.consistency_target, ConsistencyTarget)
        _check_choice("progressive", self.progressive, Progressive)
        _check_choice("consistency_times", self.consistency_times, ConsistencyTimes)
        _check_int("ramp_steps", self.ramp_steps, 1)
        _check_int("recursive_levels", self.recursive_levels, 1)
        _check_choice("target_source", self.target_source, TargetSource)
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, int | float):
            raise ValueError(f"ema_decay must be a float in [0, 1), got {self.ema_decay!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be a float in [0, 1), got {self.ema_decay!r}")
        _check_choice("flow_target", self.flow_target, FlowTarget)
        if self.flow_target == "teacher" and self.target_source == "ema":
            raise ValueError(
                "flow_target 'teacher' and an EMA target source (--target-source ema) need two "
                "sets of shadow weights; one is kept: use --target-source student or teacher, "
                "or --flow-target data"
            )

    @property
    def needs_teacher(self) -> bool:
        """True when training calls the frozen teacher (for targets or flow-matching)."""
        return self.target_source == "teacher" or self.flow_target == "teacher"

    @property
    def single_level(self) -> bool:
        """True when every consistency target is built from instantaneous velocities."""
        return self.progressive != "recursive" or self.recursive_levels == 1

    def trained_jumps(self) -> list[float] | None:
        """Jump lengths ``t - s`` the consistency term trains on (None: any length in (0, 1]).

        Recorded in ``snapflow.json``: a sampler asks the student only for these jumps.
        """
        if self.alpha >= 1.0:
            return []
        if self.progressive == "recursive":
            return [2.0**-k for k in range(self.recursive_levels)]
        return [1.0] if self.consistency_times == "one_step" else None

    def consistency_weight(self, step: int) -> float:
        """Effective consistency weight at optimizer step ``step`` (ramped for ``"ramp"``)."""
        _check_int("step", step, 0)
        if self.progressive != "ramp":
            return float(self.lam)
        return float(self.lam) * min(1.0, step / self.ramp_steps)

    def num_flow_matching(self, batch: int) -> int:
        """Number of flow-matching samples in a batch of ``batch``."""
        _check_int("batch", batch, 1)
        return min(batch, math.floor(self.alpha * batch + 0.5))


@dataclass
class SnapFlowTimes:
    """Per-sample times of one batch (all (B,) tensors).

    ``t``/``s``: times of the prediction ``v(x_t, t, s)`` (``s == t`` on flow-matching
    samples). ``mid``: midpoint of the two-step target; ``s_first``/``s_second``: target times
    of its two half-jumps (``v(x_t, t, s_first)``, ``v(x_mid, mid, s_second)``); ``smallest``:
    samples whose halves are instantaneous velocities.
    """

    t: torch.Tensor
    s: torch.Tensor
    is_consistency: torch.Tensor
    mid: torch.Tensor
    s_first: torch.Tensor
    s_second: torch.Tensor
    smallest: torch.Tensor

    def rows(self, start: int, stop: int) -> SnapFlowTimes:
        """The times of samples ``start .. stop - 1``."""
        return SnapFlowTimes(*(getattr(self, f.name)[start:stop] for f in fields(self)))


@dataclass(frozen=True)
class BatchShard:
    """This process's slice of a global batch split evenly across ``count`` processes.

    ``index``: the process's rank (its slice is rows ``index * B .. (index + 1) * B - 1`` of the
    global batch of ``count * B`` samples). ``sum_across``: returns the element-wise sum of a
    tensor over all processes (an all-reduce); every process calls it at the same points.
    """

    index: int
    count: int
    sum_across: Callable[[torch.Tensor], torch.Tensor]

    def rows(self, local_batch: int) -> tuple[int, int]:
        """First and one-past-last global row of this process's slice."""
        return self.index * local_batch, (self.index + 1) * local_batch


@dataclass
class SnapFlowLoss:
    """Result of :func:`snapflow_loss`: ``total`` carries grad, the terms are detached.

    ``value``, ``flow_matching``, ``consistency``: the loss and its terms on the (global)
    batch (``value == total`` on one process); ``num_fm`` / ``num_cons`` count the samples of
    the global batch; ``times`` are this process's.
    """

    total: torch.Tensor
    flow_matching: torch.Tensor
    consistency: torch.Tensor
    num_fm: int
    num_cons: int
    consistency_weight: float
    times: SnapFlowTimes
    value: torch.Tensor


def _rand(batch: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(batch, generator=generator, device=device, dtype=torch.float32)


def sample_flow_time(
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Flow-matching times ``t ~ Beta(1.5, 1) * 0.999 + 0.001`` (LeRobot's distribution).

    Beta(1.5, 1) has CDF ``x**1.5``, so it is drawn by inversion, ``U**(1/1.5)``, which keeps
    it on ``generator`` (LeRobot draws the same law through torch.distributions, another
    random stream).
    """
    _check_int("batch", batch, 0)
    u = _rand(batch, generator)
    t = u.pow(1.0 / 1.5) * 0.999 + 0.001
    return t.to(device) if device is not None else t


def sample_snapflow_times(
    batch: int,
    config: SnapFlowConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SnapFlowTimes:
    """Draw the sample split and all times of one batch.

    The random draws are the same whatever the config (split permutation, flow times, three
    uniforms for the consistency times), so the generator advances identically for every
    configuration.
    """
    _check_int("batch", batch, 1)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    num_fm = config.num_flow_matching(batch)
    perm = torch.randperm(batch, generator=generator, device=gen_device)
    is_cons = torch.zeros(batch, dtype=torch.bool, device=gen_device)
    is_cons[perm[num_fm:]] = True
    t_fm = sample_flow_time(batch, generator)
    u_level, u_t, u_s = _rand(batch, generator), _rand(batch, generator), _rand(batch, generator)

    if config.progressive == "recursive":
        levels = config.recursive_levels
        k = torch.clamp((u_level * levels).floor(), max=levels - 1)
        d = torch.exp2(-k)
        if config.consistency_times == "one_step":
            j = torch.minimum((u_t * torch.exp2(k)).floor(), torch.exp2(k) - 1)
            t_c = 1.0 - j * d
        else:
            t_c = d + (1.0 - d) * (1.0 - u_t)
        s_c = torch.clamp(t_c - d, min=0.0)
        smallest_c = k == levels - 1
    else:
        if config.consistency_times == "one_step":
            t_c = torch.ones(batch, device=gen_device)
            s_c = torch.zeros(batch, device=gen_device)
        else:
            t_c = 1.0 - u_t
            s_c = t_c * u_s
        smallest_c = torch.ones(batch, dtype=torch.bool, device=gen_device)

    t = torch.where(is_cons, t_c, t_fm)
    s = torch.where(is_cons, s_c, t_fm)
    mid = 0.5 * (t + s)
    smallest = is_cons & smallest_c
    # Larger jumps: halves are the model's own jumps t -> mid, mid -> s. Smallest level (and
    # flow-matching samples, whose target calls are masked out): instantaneous velocities.
    s_first = torch.where(is_cons & ~smallest, mid, t)
    s_second = torch.where(is_cons & ~smallest, s, mid)
    out = SnapFlowTimes(t, s, is_cons, mid, s_first, s_second, smallest | ~is_cons)
    if device is not None:
        out = SnapFlowTimes(*(getattr(out, f).to(device) for f in out.__dataclass_fields__))
    return out


def _masked_mse(err: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``err`` (B, H, D) over the elements where ``weight`` (B, H, 1) is true."""
    total = torch.where(weight, err, torch.zeros((), dtype=err.dtype, device=err.device)).sum()
    count = weight.sum() * dim
    return total / count.clamp_min(1).to(err.dtype)


def snapflow_loss(
    velocity: VelocityFn,
    actions: torch.Tensor,
    noise: torch.Tensor,
    config: SnapFlowConfig,
    step: int = 0,
    generator: torch.Generator | None = None,
    action_is_pad: torch.Tensor | None = None,
    target_velocity: VelocityFn | None = None,
    instant_velocity: VelocityFn | None = None,
    shard: BatchShard | None = None,
    flow_velocity: VelocityFn | None = None,
) -> SnapFlowLoss:
    """SnapFlow loss of one batch: ``L_fm + lam(step) * L_cons``.

    ``actions`` and ``noise`` are (B, H, D); ``action_is_pad`` (B, H) bool marks padded action
    steps, excluded from both terms. ``step`` only matters for ``progressive="ramp"``.
    ``target_velocity`` makes the no-grad targets (default: ``velocity`` itself);
    ``instant_velocity``, when given, makes the instantaneous velocities of the smallest level
    instead (e.g. a frozen teacher). The targets are computed before the prediction, so a
    caller may swap weights in and out around the target calls. ``flow_velocity`` (required
    with ``config.flow_target == "teacher"``) makes the flow-matching samples' targets
    ``flow_velocity(x_t, t, t)`` instead of ``eps - a`` (one more no-grad call per step).

    ``shard`` (more than one process): ``actions``/``noise`` are this process's slice of the
    global batch; the times are drawn for the global batch and sliced, each term is divided by
    its global element count, ``total`` is ``count x`` this process's share of the global loss
    (so the gradient averaged over processes, as DDP does, is the global loss's gradient) and
    the reported terms are the global ones.
    """
    if actions.ndim != 3:
        raise ValueError(f"actions must be (B, H, D), got shape {tuple(actions.shape)}")
    if noise.shape != actions.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != actions {tuple(actions.shape)}")
    batch, horizon, dim = actions.shape
    if action_is_pad is None:
        valid = torch.ones(batch, horizon, 1, dtype=torch.bool, device=actions.device)
    else:
        if action_is_pad.shape != (batch, horizon) or action_is_pad.dtype != torch.bool:
            raise ValueError(
                f"action_is_pad must be a ({batch}, {horizon}) bool tensor, got "
                f"{tuple(action_is_pad.shape)} {action_is_pad.dtype}"
            )
        valid = ~action_is_pad.to(actions.device).unsqueeze(-1)
    lam = config.consistency_weight(step)

    sharded = shard is not None and shard.count > 1
    global_batch = batch * shard.count if sharded else batch
    times = sample_snapflow_times(global_batch, config, generator, actions.device)
    if sharded:
        times = times.rows(*shard.rows(batch))
    num_fm = config.num_flow_matching(global_batch)
    num_cons = global_batch - num_fm

    def bcast(x: torch.Tensor) -> torch.Tensor:
        return x.to(actions.dtype).view(batch, 1, 1)

    t3 = bcast(times.t)
    x_t = t3 * noise + (1.0 - t3) * actions
    u = noise - actions
    if config.flow_target == "teacher":
        if flow_velocity is None:
            raise ValueError("flow_target 'teacher' needs flow_velocity (the frozen teacher)")
        with torch.no_grad():
            u_flow = flow_velocity(x_t, times.t, times.t).detach()
    else:
        u_flow = u

    target = None
    if num_cons > 0:
        with torch.no_grad():
            target = _two_step_target(
                config, times, x_t, u, target_velocity or velocity, instant_velocity, bcast
            )

    pred = velocity(x_t, times.t, times.s)

    cons_w = valid & times.is_consistency.view(batch, 1, 1)
    fm_w = valid & ~times.is_consistency.view(batch, 1, 1)
    if sharded:
        return _sharded_loss(
            pred, u_flow, target, fm_w, cons_w, lam, num_fm, num_cons, times, shard
        )
    if target is not None:
        loss_cons = _masked_mse((pred - target).square(), cons_w, dim)
    else:
        loss_cons = pred.new_zeros(())

    loss_fm = _masked_mse((pred - u_flow).square(), fm_w, dim)
    total = loss_fm + lam * loss_cons if num_cons > 0 else loss_fm
    return SnapFlowLoss(
        total=total,
        flow_matching=loss_fm.detach(),
        consistency=loss_cons.detach(),
        num_fm=num_fm,
        num_cons=num_cons,
        consistency_weight=lam,
        times=times,
        value=total.detach(),
    )


def _sharded_loss(
    pred: torch.Tensor,
    u: torch.Tensor,
    target: torch.Tensor | None,
    fm_w: torch.Tensor,
    cons_w: torch.Tensor,
    lam: float,
    num_fm: int,
    num_cons: int,
    times: SnapFlowTimes,
    shard: BatchShard,
) -> SnapFlowLoss:
    """The loss terms of one slice, normalised by the global element counts."""
    dim = pred.shape[-1]
    zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
    fm_sum = torch.where(fm_w, (pred - u).square(), zero).sum()
    cons_sum = zero
    if target is not None:
        cons_sum = torch.where(cons_w, (pred - target).square(), zero).sum()
    local_counts = torch.stack([fm_w.sum(), cons_w.sum()]).to(pred.dtype) * dim
    counts = shard.sum_across(local_counts.detach()).clamp_min(1)
    loss_fm = fm_sum / counts[0]
    loss_cons = cons_sum / counts[1]
    share = loss_fm + lam * loss_cons if num_cons > 0 else loss_fm
    terms = shard.sum_across(torch.stack([loss_fm.detach(), loss_cons.detach(), share.detach()]))
    return SnapFlowLoss(
        total=share * shard.count,
        flow_matching=terms[0],
        consistency=terms[1],
        num_fm=num_fm,
        num_cons=num_cons,
        consistency_weight=lam,
        times=times,
        value=terms[2],
    )


def _two_step_target(
    config: SnapFlowConfig,
    times: SnapFlowTimes,
    x_t: torch.Tensor,
    u: torch.Tensor,
    model: VelocityFn,
    instant: VelocityFn | None,
    bcast,
) -> torch.Tensor:
    """The no-grad target ``(v1 + v2) / 2`` of every sample (only consistency samples count).

    Whether a call is needed is decided by the config alone (no device sync).
    """
    batch = x_t.shape[0]
    conditional = config.consistency_target == "conditional"
    smallest = times.smallest.view(batch, 1, 1)
    if conditional and config.single_level:
        return u

    def half(x: torch.Tensor, t: torch.Tensor, s_jump: torch.Tensor) -> torch.Tensor:
        if conditional:  # ablation: the smallest level uses eps - a
            return torch.where(smallest, u, model(x, t, s_jump))
        if instant is None:
            return model(x, t, s_jump)
        if config.single_level:
            return instant(x, t, t)
        return torch.where(smallest, instant(x, t, t), model(x, t, s_jump))

    v1 = half(x_t, times.t, times.s_first)
    x_m = x_t - (bcast(times.t) - bcast(times.mid)) * v1
    v2 = half(x_m, times.mid, times.s_second)
    return (0.5 * (v1 + v2)).detach()
