"""The policy node's inputs without ROS: the latest message of each input and what they make.

Every camera and state source has an :class:`InputSlot` holding its latest message, that
message's stamp, receive time and fault. :class:`InputSet` judges all of them at a time
(:meth:`InputSet.problems`) and assembles the observation the policy gets
(:meth:`InputSet.observe`). Messages are opaque here: the slot is given a ``check`` (cheap,
run on arrival), a ``convert`` (message -> numpy) and the stamp read from the header by the
ROS layer, so nothing in this module imports ROS.

What the judgement says about one input at clock time ``now``:

* ``missing``: no message yet;
* ``fault``: the latest message is malformed (its check or conversion failed), or it is
  stamped more than ``max_future_stamp`` ahead of the clock (clock skew);
* ``early``: stamped that far ahead, but the clock has not moved since it arrived (a
  simulation publishes a step's inputs just before it advances ``/clock``): judged again
  once the clock moves;
* ``stale``: its stamp is older than ``input_timeout`` (a negative stamp, before 1970, too).

Only a stamp of exactly zero means "no stamp": the receive time stands for it.

The task (a topic or a parameter) is judged with the inputs: none at all is ``missing``, one
longer than the bound is a ``fault``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

MAX_REASON_CHARS = 200  # longest problem text in events, diagnostics and logs
STAMP_MODES = ("oldest", "newest")
MAX_FUTURE_STAMP = 2.0  # s: largest accepted max_future_stamp (bigger skews need clock sync)


def short(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters (messages derived from input stay bounded)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_preview(task: str, chars: int = 80) -> str:
    """The start of a task instruction, for logs and status (never the whole of a long one)."""
    if len(task) <= chars:
        return task
    return f"{task[:chars]}... ({len(task)} characters)"


class InputProblem(Exception):
    """The current inputs cannot make an observation.

    ``fault``: malformed (not just missing or stale); then ``input_name`` names what failed and
    ``stamp_ns`` is the stamp the observation's chunk would have carried. ``retry``: judge
    again once the clock has moved (an input stamped ahead of a clock that stands still).
    """

    def __init__(
        self,
        message: str,
        fault: bool = False,
        input_name: str = "",
        stamp_ns: int = 0,
        retry: bool = False,
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.input_name = input_name
        self.stamp_ns = stamp_ns
        self.retry = retry


class Problem(NamedTuple):
    """Something wrong with the inputs: ``severity`` is missing, stale, fault or early (see the
    module docstring); ``input`` names the slot (``camera.front``, ``state.joints``, ``task``)
    or ``policy``."""

    severity: str
    input: str
    message: str


class SlotState(NamedTuple):
    """What an input slot holds (see :meth:`InputSlot.state`)."""

    msg: Any
    count: int
    stamp_ns: int
    recv_ns: int
    fault: str


class InputSlot:
    """The latest message of one input, its stamp, its converted value (cached) and its fault.

    ``check`` (cheap, no decoding) runs on every message as it arrives, so a malformed message
    is known at the next control tick; with ``eager`` the whole conversion runs on arrival
    (cheap ones: joint states, arrays, poses). ``convert`` otherwise runs when the observation
    is assembled. ``fault`` says why the latest message is malformed ('' if it is not).
    """

    def __init__(
        self,
        name: str,
        label: str,
        convert: Callable[[Any], Any],
        check: Callable[[Any], Any] | None = None,
        eager: bool = False,
    ) -> None:
        self.name = name
        self.label = label
        self.convert = convert
        self.check = check
        self.eager = eager
        self.msg: Any = None
        self.stamp_ns = 0
        self.recv_ns = 0
        self.count = 0
        self.errors = 0
        self.fault = ""
        self._cache: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    def update(self, msg: Any, recv_ns: int, stamp_ns: int = 0, stamp_fault: str = "") -> None:
        """Store ``msg``, received at ``recv_ns`` and stamped ``stamp_ns``; ``stamp_fault``
        says why its stamp is malformed.

        Only a stamp of exactly 0 means "no stamp" (the receive time stands for it). Any other
        stamp, negative ones (before 1970, or a sender's 2^31 s wrapped to -2^31 on the wire)
        included, is the message's capture time and is judged like any other: far in the past
        it is stale, far ahead it is clock skew."""
        fault = stamp_fault
        value = None
        if not fault:
            try:
                if self.eager:
                    value = self.convert(msg)
                elif self.check is not None:
                    self.check(msg)
            except Exception as exc:  # any failure is a bad input, never a crash
                fault = short(str(exc) or type(exc).__name__)
        with self._lock:
            self.msg = msg
            self.stamp_ns = stamp_ns if stamp_ns != 0 else recv_ns
            self.recv_ns = recv_ns
            self.count += 1
            self._cache = (self.count, value) if self.eager and not fault else None
            self._set_fault(fault)

    def mark_unreadable(self, reason: str) -> None:
        """A message that could not even be stored (say, an unreadable header)."""
        with self._lock:
            self._set_fault(short(f"unreadable message: {reason}"))

    def _set_fault(self, fault: str) -> None:
        self.fault = fault
        if fault:
            self.errors += 1

    def state(self) -> SlotState:
        """The latest message, its count, stamp, receive time and fault, read together."""
        with self._lock:
            return SlotState(self.msg, self.count, self.stamp_ns, self.recv_ns, self.fault)

    def value(self) -> tuple[Any, int, int]:
        """Converted latest message, its stamp and receive time (raises on bad messages)."""
        with self._lock:
            msg, count, stamp_ns, recv_ns = self.msg, self.count, self.stamp_ns, self.recv_ns
            fault, cache = self.fault, self._cache
        if msg is None:
            raise InputProblem(f"{self.label}: no message yet")
        if fault:
            raise InputProblem(f"{self.label}: {fault}", fault=True, input_name=self.name)
        if cache is not None and cache[0] == count:
            return cache[1], stamp_ns, recv_ns
        try:
            value = self.convert(msg)
        except Exception as exc:  # any conversion failure is a bad input, never a crash
            fault = short(str(exc) or type(exc).__name__)
            with self._lock:
                if self.count == count:
                    self._set_fault(fault)
            raise InputProblem(f"{self.label}: {fault}", fault=True, input_name=self.name) from exc
        with self._lock:
            if self.count == count:
                self._cache = (count, value)
        return value, stamp_ns, recv_ns

    def report(self, now_ns: int) -> dict[str, Any]:
        """Topic, message count, ages (s, None before the first message), errors, last fault."""
        st = self.state()
        seen = st.msg is not None
        return {
            "topic": self.label,
            "count": st.count,
            "age_s": (now_ns - st.stamp_ns) * 1e-9 if seen else None,
            "receive_age_s": (now_ns - st.recv_ns) * 1e-9 if seen else None,
            "errors": self.errors,
            "last_error": st.fault,
        }


@dataclass
class Observed:
    """The inputs assembled for the policy: images by policy key, the state vector, the task,
    the observation stamp and the newest input's receive time and stamp (input latency)."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    task: str
    stamp_ns: int
    newest_recv_ns: int
    newest_stamp_ns: int
    convert_s: float


class InputSet:
    """Every input of the node: cameras (``(policy image key, slot)``, in order), state sources
    (in state-vector order) and the task (topic text, or the ``task.text`` parameter)."""

    def __init__(
        self,
        cameras: Sequence[tuple[str, InputSlot]],
        states: Sequence[InputSlot],
        stamp_mode: str = "oldest",
        task_topic: str = "",
        max_task_chars: int = 1000,
    ) -> None:
        if stamp_mode not in STAMP_MODES:
            raise ValueError(f"observation stamp must be one of {STAMP_MODES}, got {stamp_mode!r}")
        self.cameras = list(cameras)
        self.states = list(states)
        self.stamp_mode = stamp_mode
        self.task_topic = task_topic
        self.max_task_chars = max_task_chars
        self.slots = {slot.name: slot for _, slot in self.cameras}
        self.slots.update({slot.name: slot for slot in self.states})
        self._task_lock = threading.Lock()
        self._task_from_topic: str | None = None
        self.task_fault = ""
        self.task_count = 0

    # ------------------------------------------------------------------ task
    def set_task(self, text: str) -> bool:
        """A task arrived on the topic: refused (``task_fault`` set) when too long; True when
        it is accepted and differs from the previous one."""
        with self._task_lock:
            self.task_count += 1
            if len(text) > self.max_task_chars:
                self.task_fault = (
                    f"task: {len(text)} characters on {self.task_topic or 'the task topic'}, "
                    f"at most {self.max_task_chars} are accepted"
                )
                return False
            self.task_fault = ""
            changed = text != self._task_from_topic
            self._task_from_topic = text
            return changed

    def task(self, default: str) -> str:
        """The task from the topic, else ``default`` (the ``task.text`` parameter)."""
        with self._task_lock:
            return self._task_from_topic if self._task_from_topic is not None else default

    # ------------------------------------------------------------------ judging
    def generation(self) -> int:
        """Changes whenever an input or the task changes."""
        return sum(slot.count for slot in self.slots.values()) + self.task_count

    def problems(
        self, now_ns: int, timeout: float, max_ahead: float, task_text: str
    ) -> list[Problem]:
        """What is wrong with the inputs at ``now_ns`` (see the module docstring)."""
        problems = []
        for slot in self.slots.values():
            st = slot.state()
            if st.msg is None:
                problems.append(Problem("missing", slot.name, f"{slot.label}: no message yet"))
            elif st.fault:
                problems.append(Problem("fault", slot.name, short(f"{slot.label}: {st.fault}")))
            elif (ahead := (st.stamp_ns - now_ns) * 1e-9) > max_ahead:
                severity = "early" if now_ns == st.recv_ns else "fault"
                problems.append(
                    Problem(
                        severity,
                        slot.name,
                        f"{slot.label}: clock skew: stamped {ahead:.3f} s ahead of the node "
                        f"clock (max_future_stamp {max_ahead:g} s)",
                    )
                )
            elif -ahead > timeout:
                problems.append(
                    Problem(
                        "stale", slot.name, f"{slot.label}: stale ({-ahead:.2f} s > {timeout:g} s)"
                    )
                )
        if self.task_fault:
            problems.append(Problem("fault", "task", self.task_fault))
        elif not self.task(task_text):
            problems.append(
                Problem(
                    "missing",
                    "task",
                    f"task: none (set task.text or publish on {self.task_topic or 'task.topic'})",
                )
            )
        return problems

    def observation_stamp(self) -> int:
        """The stamp a chunk of the current inputs carries (oldest or newest input stamp)."""
        stamps = [slot.state().stamp_ns for _, slot in self.cameras]
        stamps += [slot.state().stamp_ns for slot in self.states]
        return self._pick(stamps)

    def _pick(self, stamps: list[int]) -> int:
        return min(stamps) if self.stamp_mode == "oldest" else max(stamps)

    def observe(self, now_ns: int, timeout: float, max_ahead: float, task_text: str) -> Observed:
        """The observation of the current inputs; :class:`InputProblem` if there is none
        (``fault``: a malformed one, with the failing input and the stamp it would carry;
        ``retry``: only inputs stamped ahead of a clock that has not moved)."""
        problems = self.problems(now_ns, timeout, max_ahead, task_text)
        waiting = [p for p in problems if p.severity in ("missing", "early")]
        if waiting:
            retry = all(p.severity == "early" for p in waiting)
            raise InputProblem("; ".join(p.message for p in waiting), retry=retry)
        stamp_ns = self.observation_stamp()
        faults = [p for p in problems if p.severity == "fault"]
        if faults:
            first = faults[0]
            raise InputProblem(first.message, fault=True, input_name=first.input, stamp_ns=stamp_ns)
        if problems:  # stale only: not a malformed observation
            raise InputProblem("; ".join(p.message for p in problems))
        start = time.perf_counter()
        images = {}
        stamps, recvs = [], []
        try:
            for key, slot in self.cameras:
                img, stamp, recv = slot.value()
                images[key] = img
                stamps.append(stamp)
                recvs.append(recv)
            parts = []
            for slot in self.states:
                values, stamp, recv = slot.value()
                parts.append(np.asarray(values, np.float64))
                stamps.append(stamp)
                recvs.append(recv)
        except InputProblem as exc:
            exc.stamp_ns = stamp_ns
            raise
        state = np.concatenate(parts).astype(np.float32)
        newest = int(np.argmax(stamps))
        return Observed(
            images=images,
            state=state,
            task=self.task(task_text),
            stamp_ns=self._pick(stamps),
            newest_recv_ns=recvs[newest],
            newest_stamp_ns=stamps[newest],
            convert_s=time.perf_counter() - start,
        )

    def report(self, now_ns: int) -> dict[str, dict[str, Any]]:
        """Per input: topic, count, ages, errors (see :meth:`InputSlot.report`)."""
        return {name: slot.report(now_ns) for name, slot in self.slots.items()}
