"""The runtime latency benchmark in its CI-sized form (tiny models, few repeats)."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.bench import runtime_latency


def test_tiny_benchmark_writes_table_and_json(tmp_path, capsys, monkeypatch, tiny_cache):
    monkeypatch.setenv("SNAPFLOW_CACHE", str(tiny_cache.parent / "bench_cache"))
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
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1
    assert report["settings"]["engines"] == ["eager", "fast"]
    assert len(report["rows"]) == 4
    for row in report["rows"]:
        assert set(row["steps"]) == {"1", "10"}
        one, ten = row["steps"]["1"], row["steps"]["10"]
        for stage in ("preprocess", "prefix", "denoise", "postprocess", "total"):
            assert 0 < one[stage]["median_ms"] <= one[stage]["p90_ms"]
        assert ten["denoise"]["median_ms"] > one["denoise"]["median_ms"]
        assert row["ratio_10_to_1"]["denoise"] == pytest.approx(
            ten["denoise"]["median_ms"] / one["denoise"]["median_ms"]
        )
        eager = next(
            r for r in report["rows"] if r["policy"] == row["policy"] and r["engine"] == "eager"
        )
        assert row["speedup_vs_eager"]["1"]["total"] == pytest.approx(
            eager["steps"]["1"]["total"]["median_ms"] / one["total"]["median_ms"]
        )


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
