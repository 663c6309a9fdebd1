"""The LIBERO bridge's episode driver in-process, on a fake simulator (no ROS, no MuJoCo):
episodes, the lock-step clock protocol and its kicks, stale and rejected commands, requests,
automatic next episodes, real-time no-ops and holds, shutdown."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from snapflow_ros.sim import validate_action
from snapflow_ros.sim.episode_events import (
    EpisodeEnd,
    EpisodeEvent,
    EpisodeStart,
    decode_episode_event,
    to_json,
)
from snapflow_ros.sim.episodes import DT_NS, EpisodeDriver, ObjectMotion
from test.fresh_interpreter import run_without

from ..control.test_layers import ROS

LEAD_NS = 10_000
START_NS = 1_000_000_000


class FakeSim:
    """Steps instantly; an episode is done after ``done_after`` steps. Its one object, a can,
    rises 5 cm at the first step, comes down at the next and slides 3-4 cm sideways."""

    def __init__(self, done_after: int = 1000) -> None:
        self.config = SimpleNamespace(suite="", task_index=0, init_state_index=0, max_steps=0)
        self.done_after = done_after
        self.steps = 0
        self.max_steps = 280
        self.task_language = "put the bowl on the plate"
        self.task_name = "bowl_plate"
        self.timing = SimpleNamespace(reset_s=0.01, build_s=0.02)
        self.num_init_states = 50
        # the hand stays 5 cm to the can's +y side, 3.5 cm above where it rises to at step 1
        self.observation = SimpleNamespace(
            state=np.zeros(8), object_pos=self._can(0.0, 0.0), eef_pos=np.array([0.1, -0.15, 0.985])
        )
        self.actions: list[np.ndarray] = []
        self.ended = 0
        self.closed = False
        self.paused = False
        self.rendered: list[int] = []  # steps whose observation had its cameras rendered

    @staticmethod
    def _can(rise: float, slide: float) -> dict[str, np.ndarray]:
        return {"can_1": np.array([0.1 + slide, -0.2 + 0.75 * slide, 0.9 + rise])}

    def reset(self, suite: str, task: int, init: int) -> Any:
        self.config.suite, self.config.task_index, self.config.init_state_index = suite, task, init
        self.steps = 0
        self.observation.object_pos = self._can(0.0, 0.0)
        return self.observation

    def pause_rendering(self, paused: bool) -> None:
        self.paused = paused

    def step(self, action: np.ndarray) -> Any:
        self.steps += 1
        self.actions.append(np.array(action))
        if not self.paused:
            self.rendered.append(self.steps)
        self.observation.object_pos = (
            self._can(0.05, 0.0) if self.steps == 1 else self._can(0, 0.04)
        )
        done = self.steps >= self.done_after
        return SimpleNamespace(
            observation=self.observation,
            done=done,
            reason="success" if done else "",
            step_s=0.001,
        )

    def end_episode(self) -> None:
        self.ended += 1

    def close(self) -> None:
        self.closed = True


class Outputs:
    """What the driver publishes, in order: ("obs", stamp), ("clock", ns), ("republish",),
    ("task", text), ("episode", event decoded from its JSON, the JSON), ("log", level, text)."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.lock = threading.Lock()

    def _add(self, *item: Any) -> None:
        with self.lock:
            self.items.append(item)

    def observation(self, obs: Any, stamp_ns: int, privileged: Any = None) -> None:
        self._add("obs", stamp_ns)
        if privileged is not None:
            self._add("privileged", stamp_ns, np.array(privileged))

    def republish(self, stamp_ns: int | None = None) -> None:
        self._add("republish", stamp_ns)

    def clock(self, ns: int) -> None:
        self._add("clock", ns)

    def task(self, text: str) -> None:
        self._add("task", text)

    def episode(self, event: EpisodeEvent) -> None:
        wire = to_json(event)  # what the bridge publishes; read back as every reader does
        self._add("episode", decode_episode_event(wire), wire)

    def log(self, level: str, message: str) -> None:
        self._add("log", level, message)

    policy_answer = "no policy_node set"  # what policy() answers (NO_POLICY_NODE: none set)

    def policy(self, action: str, seed: int | None = None) -> str:
        self._add("policy", action, seed)
        return self.policy_answer

    def of(self, kind: str) -> list[tuple]:
        with self.lock:
            return [i for i in self.items if i[0] == kind]

    def events(self, kind: str) -> list[Any]:
        return [e[1] for e in self.of("episode") if e[1].kind == kind]


PARAMS = {
    "suite": "libero_spatial",
    "task_index": 0,
    "init_state_index": 0,
    "episode_length": 0,
    "mode": "lockstep",
    "autostart": True,
    "auto_next": False,
    "policy_noise_seed": 0,
    "command.names": None,
    "command.topic": "policy_node/command",
    "command.out_of_range": "clip",
    "realtime.missing": "noop",
    "realtime.command_timeout": 0.5,
    "realtime.wait_first_command": False,
    "lockstep.kick_period": 0.05,
    "lockstep.kick_max": 0.1,
    "lockstep.clock_delay": 0.0,
    "lockstep.stamp_lead": LEAD_NS * 1e-9,
    "clock.start": 1.0,
    "clock.reset_gap": 10.0,
    "privileged_state": False,
    "render.on_demand": False,
    "render.max_age": 0.5,
}


class Rig:
    def __init__(self, sim: FakeSim | None = None, **params: Any) -> None:
        self.params = {**PARAMS, **params}
        self.sim = sim or FakeSim()
        self.out = Outputs()
        self.driver = EpisodeDriver(
            self.params.__getitem__,
            self.params.__setitem__,
            self.out,
            lambda: self.sim,
            validate_action,
        )
        self.thread = threading.Thread(target=self.driver.run, daemon=True)
        self.thread.start()

    def wait(self, predicate, what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.002)
        return value

    def clock(self) -> int:
        return self.out.of("clock")[-1][1]

    def started(self) -> EpisodeStart:
        """The first episode's start event, once its observation and clock are out."""
        (start,) = self.wait(lambda: self.out.events("start"), "the start event")
        tick = start.first_stamp_ns - LEAD_NS
        self.wait(lambda: self.clock() == tick, "the clock of the first observation")
        return start

    def close(self) -> None:
        self.driver.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def rig():
    rigs: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rigs.append(Rig(**kw))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


def test_an_episode_starts_with_its_task_clock_and_observation(rig):
    r = rig()
    (start,) = r.wait(lambda: r.out.events("start"), "the start event")
    first = start.first_stamp_ns
    assert start.mode == "lockstep" and start.stamps == "sim"
    assert first == START_NS + 10 * 1_000_000_000  # clock.start + one reset gap
    kinds = [i[0] for i in r.out.items[:5]]
    assert kinds == ["task", "episode", "clock", "obs", "clock"]
    assert r.out.items[2][1] == first - DT_NS - LEAD_NS  # one period early
    assert r.out.items[3][1] == first and r.out.items[4][1] == first - LEAD_NS


def test_a_fresh_command_makes_exactly_one_step(rig):
    r = rig()
    start = r.started()
    clock = start.first_stamp_ns - LEAD_NS  # not r.clock(): a kick may have set it back
    r.driver.command([0.1] * 6 + [1.0], stamp_ns=clock)
    r.wait(lambda: r.sim.steps == 1, "one step")
    np.testing.assert_allclose(r.sim.actions[0], [0.1] * 6 + [1.0])
    r.wait(lambda: r.out.of("obs")[-1][1] == start.first_stamp_ns + DT_NS, "the next obs")
    assert r.wait(lambda: r.clock() == clock + DT_NS, "the clock one period on")
    time.sleep(0.1)
    assert r.sim.steps == 1  # no command, no step (kicks meanwhile)


def test_a_stale_command_is_dropped_and_the_node_is_kicked(rig):
    r = rig(**{"lockstep.kick_period": 0.02, "lockstep.kick_max": 0.02})
    r.started()
    clock = r.clock()
    r.driver.command([0.0] * 7, stamp_ns=clock - DT_NS)  # computed for the previous tick
    r.wait(lambda: len(r.out.of("republish")) >= 2, "two kicks")
    assert r.sim.steps == 0 and r.driver.stats.stale == 1
    ticks = [c[1] for c in r.out.of("clock")]
    kicks = [i for i in range(len(ticks) - 1) if ticks[i : i + 2] == [clock - DT_NS, clock]]
    assert kicks  # back one period, then forward to the same time
    assert r.driver.stats.kicks >= 1


def test_an_unstamped_command_after_the_observation_is_fresh(rig):
    r = rig()
    r.started()
    r.driver.command([0.0] * 7)
    r.wait(lambda: r.sim.steps == 1, "one step")


def test_bad_commands_are_rejected_and_the_simulation_does_not_move(rig):
    r = rig(**{"command.names": ["a", "b", "c", "d", "e", "f", "g"]})
    r.started()
    r.driver.command([np.nan] * 7, stamp_ns=r.clock())
    r.driver.command([0.0] * 6)  # wrong length
    r.driver.command([0.0] * 7, names=["x"] * 7)  # names that do not provide the wanted ones
    time.sleep(0.1)
    assert r.sim.steps == 0 and r.driver.stats.rejected == 3
    errors = [i[2] for i in r.out.of("log") if i[1] == "error"]
    assert errors and "rejected command on policy_node/command" in errors[0]
    r.driver.command(list(range(7))[::-1], names=list("gfedcba"))  # by name
    r.wait(lambda: r.sim.steps == 1, "one step")
    np.testing.assert_allclose(r.sim.actions[0], [0, 1, 1, 1, 1, 1, 1])  # clipped to [-1, 1]
    assert r.driver.stats.clipped == 1


def test_the_end_of_an_episode_and_the_next_one(rig):
    r = rig(sim=FakeSim(done_after=2), auto_next=True)
    start = r.started()
    for k in range(2):
        tick = start.first_stamp_ns + k * DT_NS - LEAD_NS
        r.wait(lambda t=tick: r.clock() == t, f"the clock of step {k}")
        r.driver.command([0.0] * 7, stamp_ns=tick)
    (end,) = r.wait(lambda: r.out.events("end"), "the end event")
    assert end.success and end.reason == "success" and end.steps == 2
    assert end.commands.applied == 2 and end.kicks >= 0
    (can,) = end.objects.values()
    assert can == {
        "max_rise_m": 0.05,
        "final_rise_m": 0.0,
        "moved_xy_m": 0.05,
        # where the hand was at step 1, the first step the can was 3 cm up
        "lift_eef_dx_m": 0.0,
        "lift_eef_dy_m": 0.05,
        "lift_eef_dz_m": 0.035,
    }
    starts = r.wait(lambda: (s := r.out.events("start")) and len(s) == 2 and s, "the next")
    assert starts[1].init_state_index == 1 and r.params["init_state_index"] == 1
    assert starts[1].start_ns > end.end_ns  # a reset gap of simulation time


def test_auto_next_pauses_resets_and_resumes_the_policy_node_around_the_next_episode(rig):
    """What libero_eval does between episodes: pause the node, reset the bridge (the first
    observation and clock of the new episode go out), reset the node, resume it."""
    r = rig(sim=FakeSim(done_after=1), auto_next=True)
    r.out.policy_answer = ""
    start = r.started()
    assert not r.out.of("policy")  # the first episode: started at start-up, as before
    r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)
    r.wait(lambda: len(r.out.events("start")) == 2 and len(r.out.of("policy")) == 3, "next")
    kinds = [
        i[1] if i[0] == "policy" else i[0]
        for i in r.out.items
        if i[0] in ("policy", "obs") or (i[0] == "episode" and i[1].kind != "end")
    ]
    second = kinds.index("episode", 1)  # the second start event
    assert kinds[second - 1] == "pause" and kinds[second + 1 : second + 4] == [
        "obs",
        "reset",
        "resume",
    ], kinds
    assert not [i for i in r.out.of("log") if "auto_next" in i[2]]
    # the node's noise seed is the new state's own (as libero_eval --noise-seed 0): state 1
    assert [i[1:] for i in r.out.of("policy")] == [("pause", None), ("reset", 1), ("resume", None)]


def test_auto_next_gives_each_initial_state_its_noise_seed_or_leaves_it_alone(rig):
    r = rig(sim=FakeSim(done_after=1), auto_next=True, init_state_index=6, policy_noise_seed=100)
    r.out.policy_answer = ""
    start = r.started()
    r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)
    r.wait(lambda: len(r.out.of("policy")) == 3, "the next episode's policy calls")
    assert ("reset", 107) in [i[1:] for i in r.out.of("policy")]
    r.params["policy_noise_seed"] = -1
    end = r.wait(lambda: r.out.events("start")[1:], "the second start")[0]
    r.driver.command([0.0] * 7, stamp_ns=end.first_stamp_ns - LEAD_NS)
    r.wait(lambda: len(r.out.of("policy")) == 6, "the third episode's policy calls")
    assert [i[1:] for i in r.out.of("policy")][3:] == [
        ("pause", None),
        ("reset", None),
        ("resume", None),
    ]


def test_auto_next_warns_when_the_policy_node_does_not_answer_and_goes_on(rig):
    r = rig(sim=FakeSim(done_after=1), auto_next=True)
    r.out.policy_answer = "/policy_node/reset is not available"
    start = r.started()
    r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)
    r.wait(lambda: len(r.out.events("start")) == 2, "the next episode")
    warnings = r.wait(
        lambda: [i for i in r.out.of("log") if "auto_next: policy node" in i[2]], "warnings"
    )
    assert warnings[0][1] == "warning" and "is not available" in warnings[0][2]


def test_requests_reset_the_episode_and_answer_with_its_start(rig):
    r = rig(autostart=False)
    time.sleep(0.05)
    assert not r.out.events("start")
    ok, message = r.driver.request("reset", timeout=10)
    assert ok and decode_episode_event(message) == r.out.events("start")[0]
    ok, message = r.driver.request("next", timeout=10)
    assert ok and r.params["init_state_index"] == 1
    ends = r.out.events("end")
    assert [e.reason for e in ends] == ["reset"]


class BasketSim(FakeSim):
    """libero_object task 0's scene: the soup can (moved by the steps) and the basket's site."""

    BASKET = np.array([-0.1, 0.25, 0.95])

    def reset(self, suite: str, task: int, init: int) -> Any:
        obs = super().reset(suite, task, init)
        obs.object_pos = {"alphabet_soup_1": obs.object_pos["can_1"]}
        return obs

    def step(self, action: np.ndarray) -> Any:
        result = super().step(action)
        result.observation.object_pos = {"alphabet_soup_1": result.observation.object_pos["can_1"]}
        return result

    def site_pos(self, name: str) -> np.ndarray:
        assert name == "basket_1_contain_region"
        return self.BASKET.copy()


def test_privileged_state_goes_out_with_every_observation(rig):
    r = rig(sim=BasketSim(), suite="libero_object", privileged_state=True)
    start = r.started()
    (first,) = r.out.of("privileged")
    assert first[1] == start.first_stamp_ns
    np.testing.assert_allclose(first[2], [0.1, -0.2, 0.9, -0.1, 0.25, 0.95])  # can, basket
    r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)  # this tick's
    second = r.wait(lambda: r.out.of("privileged")[1:], "the next observation's")[0]
    assert second[1] == start.first_stamp_ns + DT_NS
    np.testing.assert_allclose(second[2][:3], [0.1, -0.2, 0.95])  # the can rose 5 cm
    assert len(r.out.of("privileged")) == len(r.out.of("obs"))


def test_privileged_state_refuses_a_task_without_an_expert(rig):
    r = rig(autostart=False, suite="libero_goal", privileged_state=True)
    ok, message = r.driver.request("reset", timeout=10)
    assert not ok and "privileged_state: no scripted expert for libero_goal task 0" in message
    assert not r.out.events("start") and not r.out.of("obs") and not r.driver.fatal
    r.params["privileged_state"] = False  # the driver keeps serving requests
    ok, _ = r.driver.request("reset", timeout=10)
    assert ok and r.out.of("obs") and not r.out.of("privileged")


def test_realtime_steps_on_the_wall_clock_with_noops_and_holds(rig):
    r = rig(mode="realtime", **{"realtime.missing": "hold"})
    r.wait(lambda: r.sim.steps >= 3, "three real-time steps")
    assert r.driver.stats.noop >= 3  # no command yet: no-ops, gripper stays open (-1)
    np.testing.assert_allclose(r.sim.actions[0], [0, 0, 0, 0, 0, 0, -1])
    r.driver.command([0.2] * 7)
    steps = r.sim.steps
    r.wait(lambda: r.sim.steps >= steps + 3, "three more steps")
    assert r.driver.stats.held >= 1  # the command repeated while it is recent
    assert any(np.allclose(a, 0.2) for a in r.sim.actions)
    stamps = [o[1] for o in r.out.of("obs")]
    assert abs(stamps[-1] - time.time_ns()) < 5e9  # wall-clock stamps


def test_stopping_ends_the_episode_in_progress(rig):
    r = rig()
    start = r.started()
    r.driver.command([0.0] * 7, stamp_ns=start.first_stamp_ns - LEAD_NS)
    r.wait(lambda: r.sim.steps == 1, "one step")
    r.close()
    (end,) = r.out.events("end")
    assert end.reason == "shutdown" and end.steps == 1
    assert r.sim.closed and not r.driver.fatal


def test_stopping_before_the_first_step_reports_no_episode(rig):
    """Ctrl-C between a reset and the first command: the episode never ran, no result."""
    r = rig()
    r.started()
    r.close()
    assert not r.out.events("end") and r.sim.closed and not r.driver.fatal
    assert any("stopped before its first step (no result)" in i[2] for i in r.out.of("log"))


def test_the_driver_imports_no_ros():
    run_without("import snapflow_ros.sim.episodes", ROS)


def _steps(r: Rig, count: int, start: EpisodeStart) -> None:
    """Send ``count`` fresh commands, one per step, waiting for each step."""
    for _ in range(count):
        done = r.sim.steps
        clock = start.first_stamp_ns - LEAD_NS + done * DT_NS
        r.driver.command([0.0] * 7, stamp_ns=clock)
        r.wait(lambda d=done: r.sim.steps == d + 1, f"step {done + 1}")


def test_on_demand_rendering_renders_where_the_chunk_runs_out(rig):
    r = rig(**{"render.on_demand": True, "render.max_age": 10.0})
    start = r.started()
    first = start.first_stamp_ns
    r.driver.chunk(first - 100 * DT_NS, 50)  # a chunk from before this episode: ignored
    r.driver.chunk(first, 10)  # computed from the start observation: actions for steps 0..9
    _steps(r, 12, start)
    assert r.sim.rendered == [10, 11, 12]  # step 10: the plan is used up; then unknown again
    r.driver.chunk(first + 10 * DT_NS, 10)  # from step 10's observation: steps 10..19
    _steps(r, 8, start)
    assert r.sim.rendered == [10, 11, 12, 20]
    (end,) = _end_after_reset(r)
    assert end.rendered_steps == 1 + 4  # the start observation + four steps


def test_on_demand_rendering_keeps_cameras_younger_than_max_age(rig):
    r = rig(**{"render.on_demand": True, "render.max_age": 0.2})  # 4 steps at 20 Hz
    start = r.started()
    r.driver.chunk(start.first_stamp_ns, 25)
    _steps(r, 12, start)
    assert r.sim.rendered == [4, 8, 12]


def test_without_on_demand_or_in_realtime_every_step_is_rendered(rig):
    r = rig()
    start = r.started()
    r.driver.chunk(start.first_stamp_ns, 10)
    _steps(r, 3, start)
    assert r.sim.rendered == [1, 2, 3]


def _end_after_reset(r: Rig) -> list[EpisodeEnd]:
    ok, _ = r.driver.request("reset")
    assert ok
    return r.out.events("end")


def test_object_motion_records_where_the_hand_was_when_an_object_first_rose_3_cm():
    motion = ObjectMotion({"bowl": np.array([0.0, 0.0, 0.9]), "plate": np.array([0.2, 0.0, 0.9])})
    hand = np.array([0.0, -0.05, 0.935])
    motion.update({"bowl": np.array([0.0, 0.0, 0.92]), "plate": np.array([0.2, 0.0, 0.9])}, hand)
    assert "lift_eef_dy_m" not in motion.report()["bowl"]  # 2 cm: not lifted yet
    motion.update({"bowl": np.array([0.0, 0.0, 0.93])}, hand)  # the first step 3 cm up
    motion.update({"bowl": np.array([0.1, 0.1, 1.1])}, np.array([0.5, 0.5, 1.5]))  # later: ignored
    bowl, plate = motion.report()["bowl"], motion.report()["plate"]
    assert (bowl["lift_eef_dx_m"], bowl["lift_eef_dy_m"], bowl["lift_eef_dz_m"]) == (
        0.0,
        -0.05,
        0.005,
    )
    assert bowl["max_rise_m"] == 0.2 and set(plate) == {"max_rise_m", "final_rise_m", "moved_xy_m"}
    no_hand = ObjectMotion({"bowl": np.array([0.0, 0.0, 0.9])})
    no_hand.update({"bowl": np.array([0.0, 0.0, 1.0])})  # without the hand's position: no grasp
    assert "lift_eef_dy_m" not in no_hand.report()["bowl"]
