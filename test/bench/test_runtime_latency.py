"""The runtime latency benchmark in its CI-sized form (tiny models, few repeats)."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.bench import runtime_latency
from snapflow_ros.bench.stage_profile import PREFIX_PASS_MODULES
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions, StageTimings


class PassCountingRuntime(PolicyRuntime):
    """A PolicyRuntime that records, for every prediction after loading, the step count it
    ran and the action-expert passes its model made (the VLM + expert pair's forward calls
    without prefix embeddings; the one with them is the prefix pass)."""

    def __init__(self, *args, **kwargs) -> None:
        self.expert_passes = 0
        self.predictions: list[tuple[int, int]] = []
        super().__init__(*args, **kwargs)
        self.predictions.clear()  # the load's warm-up ran before the counter was in place
        pair = dict(self.policy.named_modules())[PREFIX_PASS_MODULES[self.policy_type]]
        forward = pair.forward

        def counted(*a, **kw):
            embeds = kw.get("inputs_embeds")
            if isinstance(embeds, list | tuple) and embeds[0] is None:
                self.expert_passes += 1
            return forward(*a, **kw)

        pair.forward = counted

    def predict_chunk(self, obs, num_steps=None, noise=None):
        before = self.expert_passes
        chunk = super().predict_chunk(obs, num_steps=num_steps, noise=noise)
        self.predictions.append((chunk.num_steps, self.expert_passes - before))
        return chunk


@pytest.mark.slow
def test_tiny_benchmark_writes_table_and_json(tmp_path, capsys, monkeypatch, tiny_cache):
    """The benchmark's rows and table; each step count really runs that many expert passes
    (counted, not inferred from the times, which a loaded machine can invert)."""
    monkeypatch.setenv("SNAPFLOW_CACHE", str(tiny_cache.parent / "bench_cache"))
    made: list[PassCountingRuntime] = []

    def runtime(*args, **kwargs) -> PassCountingRuntime:
        made.append(PassCountingRuntime(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(runtime_latency, "PolicyRuntime", runtime)
    out = tmp_path / "bench.json"
    code = runtime_latency.main(
        [
            "--policies", "smolvla,pi05", "--steps", "1,10", "--repeats", "2",
            "--engines", "eager,fast", "--device", "cpu", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    for policy in ("smolvla", "pi05"):
        for engine in ("eager", "fast"):
            assert table.count(f"| {policy} | tiny | float32 | {engine} |") == 2
    # every runtime: one warm-up and two timed predictions per step count, each with as many
    # expert passes as steps
    assert [(r.policy_type, r.options.engine) for r in made] == [
        ("smolvla", "eager"),
        ("smolvla", "fast"),
        ("pi05", "eager"),
        ("pi05", "fast"),
    ]
    for r in made:
        assert sorted(r.predictions) == [(1, 1)] * 3 + [(10, 10)] * 3, r.predictions
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1
    assert report["settings"]["engines"] == ["eager", "fast"]
    assert len(report["rows"]) == 4
    eager = {r["policy"]: r for r in report["rows"] if r["engine"] == "eager"}
    for row in report["rows"]:
        assert set(row["steps"]) == {"1", "10"}
        for stats in row["steps"].values():
            for stage in ("preprocess", "prefix", "denoise", "postprocess", "total"):
                assert 0 < stats[stage]["median_ms"] <= stats[stage]["p90_ms"]
        # the speed-ups pair each row with the eager row of its own policy and step count
        base = eager[row["policy"]]["steps"]
        assert row["speedup_vs_eager"] == {
            n: {
                key: pytest.approx(base[n][key]["median_ms"] / stats[key]["median_ms"])
                for key in ("denoise", "total")
            }
            for n, stats in row["steps"].items()
        }


def _timings(denoise_s: list[float], total_s: list[float]) -> list[StageTimings]:
    return [
        StageTimings(preprocess=0.001, prefix=0.002, denoise=d, postprocess=0.0005, total=t)
        for d, t in zip(denoise_s, total_s, strict=True)
    ]


def test_row_statistics_and_ratios_from_known_timings(tiny_pi05_dir):
    """Medians, p90, per-step time and the 10/1 ratios of hand-made timings, worked out by
    hand (sorted samples; p90 of three interpolates between the 2nd and 3rd)."""
    runtime = PolicyRuntime(tiny_pi05_dir, RuntimeOptions(device="cpu", warmup=0))
    samples = {
        1: _timings([0.012, 0.010, 0.030], [0.050, 0.040, 0.060]),
        10: _timings([0.096, 0.300, 0.090], [0.125, 0.120, 0.500]),
    }
    row = runtime_latency._row(runtime, samples, load_s=1.23)
    assert (row["policy"], row["engine"], row["dtype"], row["load_s"]) == (
        "pi05",
        "eager",
        "float32",
        1.2,
    )
    one, ten = row["steps"]["1"], row["steps"]["10"]
    assert one["denoise"]["median_ms"] == pytest.approx(12.0)
    assert one["denoise"]["p90_ms"] == pytest.approx(12.0 + 0.8 * (30.0 - 12.0))  # 26.4
    assert ten["denoise_step"]["median_ms"] == pytest.approx(9.6)
    assert one["prefix"] == {"median_ms": pytest.approx(2.0), "p90_ms": pytest.approx(2.0)}
    assert row["ratio_10_to_1"]["denoise"] == pytest.approx(8.0)  # 96 ms / 12 ms
    assert row["ratio_10_to_1"]["total"] == pytest.approx(2.5)  # 125 ms / 50 ms


def test_speedups_are_eager_time_over_own_time():
    def row(engine: str, total_ms: float, denoise_ms: float) -> dict:
        step = {"total": {"median_ms": total_ms}, "denoise": {"median_ms": denoise_ms}}
        return {"engine": engine, "steps": {"1": step}}

    rows = [row("eager", 50.0, 20.0), row("fast", 40.0, 5.0), row("compiled", 100.0, 40.0)]
    runtime_latency.add_speedups(rows)
    assert [r["speedup_vs_eager"]["1"] for r in rows] == [
        {"denoise": 1.0, "total": 1.0},
        {"denoise": 4.0, "total": 1.25},
        {"denoise": 0.5, "total": 0.5},
    ]
    without_eager = [row("fast", 40.0, 5.0)]
    runtime_latency.add_speedups(without_eager)
    assert "speedup_vs_eager" not in without_eager[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--policies", "act"],
        ["--sizes", "huge"],
        ["--steps", "0"],
        ["--steps", "a"],
        ["--repeats", "0"],
        ["--engines", "turbo"],
        ["--dtypes", "float16"],
        ["--compile-mode", "fastest"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        runtime_latency.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
