"""The stage profile on the tiny models: the parts add up to the chunk's time."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.bench import stage_profile


def test_parts_add_up_and_vision_hooks_fire(tmp_path, capsys):
    out = tmp_path / "profile.json"
    code = stage_profile.main(
        ["--policies", "smolvla,pi05", "--repeats", "2", "--device", "cpu", "--out", str(out)]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert [r["policy"] for r in report["rows"]] == ["smolvla", "pi05"]
    for row in report["rows"]:
        parts = row["parts_ms"]
        assert set(parts) == set(stage_profile.PARTS)
        assert parts["vision encoder"] > 0 and parts["image projector"] > 0
        assert parts["expert (denoise)"] > 0 and parts["language prefix"] >= 0
        # the parts partition the runtime's stages, which partition its total
        assert sum(parts.values()) == pytest.approx(row["total_ms"], rel=0.02)
        assert sum(row["share"].values()) == pytest.approx(1.0, rel=0.02)
    assert "| pi05 | tiny | fast | float32 | 1 |" in capsys.readouterr().out


def test_hooks_are_removed_after_profiling(tiny_pi05_dir):
    from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions

    runtime = PolicyRuntime(tiny_pi05_dir, RuntimeOptions(device="cpu", warmup=0))
    modules = dict(runtime.policy.named_modules())
    vision = modules[stage_profile.VISION_MODULES["pi05"][0]]
    with stage_profile.timed_modules(runtime) as timers:
        assert vision._forward_pre_hooks and len(timers) == 2
    assert not vision._forward_pre_hooks and not vision._forward_hooks


@pytest.mark.parametrize("argv", [["--policies", "act"], ["--steps", "0"], ["--engine", "x"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        stage_profile.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
