"""The stage profile on the tiny models: every part measured on its own, checked against a
total timed separately."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from snapflow_ros.bench import stage_profile

# what the runtime does outside its own stage stamps (the call, the final checks): measured
# 0.2-0.4 ms on the tiny models; 2 ms + 10 % of the total allows for a stall landing there
OUTSIDE_STAGES_MAX_MS, OUTSIDE_STAGES_MAX_SHARE = 2.0, 0.1


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> tuple[dict, str]:
    """One profile of both tiny models (4 repeats on the CPU): the JSON report and the table."""
    out = tmp_path_factory.mktemp("stage_profile") / "profile.json"
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        code = stage_profile.main(
            ["--policies", "smolvla,pi05", "--repeats", "4", "--device", "cpu", "--out", str(out)]
        )
    assert code == 0
    return json.loads(out.read_text()), table.getvalue()


def test_parts_are_measured_separately_and_fit_in_the_total(profile):
    report, table = profile
    assert [r["policy"] for r in report["rows"]] == ["smolvla", "pi05"]
    for row in report["rows"]:
        parts = row["parts_ms"]
        assert set(parts) == set(stage_profile.PARTS)
        assert all(v > 0 for v in parts.values()), parts
        # each timer fired once per prediction: one image pass, one prefix pass (not the
        # expert's passes, which go through the same model)
        assert row["timed_calls"] == {
            "vision encoder": 2,  # two cameras
            "image projector": 2,
            "language prefix": 1,
        }, row["timed_calls"]
        # vision, projector and language prefix run inside the runtime's prefix stage, which
        # also prepares the images, embeds the text and builds the masks (none of the parts;
        # a language prefix defined as the stage's remainder would leave nothing here)
        inside = parts["vision encoder"] + parts["image projector"] + parts["language prefix"]
        assert row["prefix_stage_ms"] - inside > 0.01, row
        # every repeat: the parts are disjoint intervals inside the separately timed total
        assert len(row["other_ms_per_repeat"]) == row["repeats"], row
        assert min(row["other_ms_per_repeat"]) >= 0, row
    assert "| pi05 | tiny | fast | float32 | 1 |" in table


@pytest.mark.timing
def test_nothing_but_the_runtime_stages_is_left_in_the_total(profile):
    """Beyond the un-hooked prefix work, the total is the runtime's stages (preprocess,
    prefix, denoise, postprocess): what lies outside them (the call, the final checks) is
    small, within a window that allows for a stall landing there."""
    report, _ = profile
    for row in report["rows"]:
        parts, total = row["parts_ms"], row["total_ms"]
        inside = parts["vision encoder"] + parts["image projector"] + parts["language prefix"]
        outside = row["other_ms"] - (row["prefix_stage_ms"] - inside)
        assert outside <= OUTSIDE_STAGES_MAX_MS + OUTSIDE_STAGES_MAX_SHARE * total, row


def test_hooks_are_removed_after_profiling(tiny_pi05_dir):
    from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions

    runtime = PolicyRuntime(tiny_pi05_dir, RuntimeOptions(device="cpu", warmup=0))
    modules = dict(runtime.policy.named_modules())
    vision = modules[stage_profile.VISION_MODULES["pi05"][0]]
    prefix = modules[stage_profile.PREFIX_PASS_MODULES["pi05"]]
    with stage_profile.timed_modules(runtime) as timers:
        assert vision._forward_pre_hooks and len(timers) == 3
        assert "forward" in vars(prefix)  # wrapped on the instance
    assert not vision._forward_pre_hooks and not vision._forward_hooks
    assert "forward" not in vars(prefix)  # the class's forward again


@pytest.mark.parametrize("argv", [["--policies", "act"], ["--steps", "0"], ["--engine", "x"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        stage_profile.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
