"""The runtime latency benchmark in its CI-sized form (tiny models, one repeat)."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.bench import runtime_latency


def test_tiny_benchmark_writes_table_and_json(tmp_path, capsys, monkeypatch, tiny_cache):
    monkeypatch.setenv("SNAPFLOW_CACHE", str(tiny_cache.parent / "bench_cache"))
    out = tmp_path / "bench.json"
    code = runtime_latency.main(
        ["--policies", "smolvla,pi05", "--steps", "1,10", "--repeats", "2", "--out", str(out)]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert table.count("| smolvla | tiny |") == 2 and table.count("| pi05 | tiny |") == 2
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1
    for row in report["rows"]:
        assert set(row["steps"]) == {"1", "10"}
        one, ten = row["steps"]["1"], row["steps"]["10"]
        assert 0 < one["prefix"]["median_ms"] <= one["prefix"]["p90_ms"]
        assert ten["denoise"]["median_ms"] > one["denoise"]["median_ms"]
        assert row["ratio_10_to_1"]["denoise"] == pytest.approx(
            ten["denoise"]["median_ms"] / one["denoise"]["median_ms"]
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["--policies", "act"],
        ["--sizes", "huge"],
        ["--steps", "0"],
        ["--steps", "a"],
        ["--repeats", "0"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        runtime_latency.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
