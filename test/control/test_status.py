"""The status protocol: typed events round-trip through JSON, decoding never raises, older
events (no version) still decode, and the wire format is the documented one."""

from __future__ import annotations

import json
import math

import pytest

from snapflow_ros.control.status import (
    VERSION,
    ChunkEvent,
    PeriodicEvent,
    RejectedEvent,
    ResetEvent,
    TransitionEvent,
    decode,
    encode,
    to_dict,
)


def test_events_round_trip():
    events = [
        ChunkEvent(
            node="/n",
            t_ns=5,
            chunk_id=3,
            accepted=True,
            stamp_ns=11,
            dt=0.05,
            timings={"total": 0.25},
        ),
        RejectedEvent(node="/n", t_ns=6, stamp_ns=11, input="state.joints", reason="NaN"),
        RejectedEvent(node="/n", t_ns=6, stamp_ns=12, input="camera.front", suppressed=41),
        TransitionEvent(node="/n", t_ns=7, state="active"),
        ResetEvent(node="/n", t_ns=8),
        PeriodicEvent(
            node="/n",
            t_ns=9,
            state="active",
            counters={"commands": 4},
            problems=[{"severity": "stale", "input": "task", "message": "m"}],
        ),
    ]
    for event in events:
        assert decode(encode(event)) == event


def test_the_wire_format():
    data = json.loads(encode(RejectedEvent(node="/policy_node", t_ns=5, stamp_ns=7, input="a")))
    assert data == {
        "event": "rejected",
        "version": VERSION,
        "node": "/policy_node",
        "t_ns": 5,
        "stamp_ns": 7,
        "input": "a",
        "reason": "",
        "suppressed": 0,
    }
    data = to_dict(ChunkEvent(convert_s=math.nan, overhead_s=0.123456789))
    assert data["convert_s"] is None and data["overhead_s"] == 0.123457


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1, 2]", '"rejected"', "null", '{"event": "unknown"}', '{"no": "event"}'],
)
def test_what_is_not_an_event_decodes_to_none(text):
    assert decode(text) is None


def test_wrong_or_missing_fields_get_their_defaults_and_old_events_version_0():
    event = decode({"event": "rejected", "stamp_ns": "11", "input": None})
    assert event == RejectedEvent(stamp_ns=None, input="", reason="", version=0)
    for bad in (1.5, True, None):
        assert decode({"event": "rejected", "stamp_ns": bad}).stamp_ns is None
    chunk = decode({"event": "chunk", "version": 1, "dt": 1, "accepted": 1})
    assert chunk.dt == 1.0 and isinstance(chunk.dt, float) and chunk.accepted is False
    assert decode(b'{"event": "pause"}').kind == "pause"
