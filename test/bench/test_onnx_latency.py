"""The onnxruntime-vs-torch benchmark on a tiny pi0.5 (structure only, never timings)."""

from __future__ import annotations

import json

import pytest

from snapflow_ros.bench import onnx_latency


def test_rows_compare_onnxruntime_with_the_torch_engines_and_reuse_the_export(tmp_path, capsys):
    argv = ["--models", "tiny-pi05", "--steps", "1,2", "--repeats", "2", "--device", "cpu",
            "--export-dir", str(tmp_path / "exports")]  # fmt: skip
    assert onnx_latency.main([*argv, "--out", str(tmp_path / "a.json")]) == 0
    (row,) = json.loads((tmp_path / "a.json").read_text())["rows"]
    assert row["model"] == "tiny-pi05" and row["threads"] == 1
    assert row["providers"] == ["CPUExecutionProvider"]
    assert row["export_s"] > 0 and row["parity_max_abs_diff"] < 1e-4
    for n in ("1", "2"):
        res = row["steps"][n]
        assert set(res["total"]) == {"eager", "fast", "onnxruntime"}
        assert res["fastest_torch"] in ("eager", "fast")
        fastest = res["total"][res["fastest_torch"]]["median_ms"]
        assert res["ort_speedup"] == pytest.approx(
            fastest / res["total"]["onnxruntime"]["median_ms"]
        )
    assert "| tiny-pi05 | 1 | 1 |" in capsys.readouterr().out
    assert onnx_latency.main([*argv, "--out", str(tmp_path / "b.json")]) == 0
    (again,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert again["export_s"] is None  # the export of the same checkpoint was reused


@pytest.mark.parametrize(
    "argv", [["--models", "nope"], ["--engines", "onnxruntime"], ["--steps", "0"]]
)
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        onnx_latency.parse_args(argv)
    assert info.value.code == 2


def test_raw_export_row_times_the_export_without_graph_passes(tmp_path, capsys):
    exports = tmp_path / "exports"
    argv = ["--models", "tiny-pi05", "--steps", "1", "--repeats", "1", "--engines", "fast",
            "--device", "cpu", "--export-dir", str(exports), "--raw-export"]  # fmt: skip
    assert onnx_latency.main([*argv, "--out", str(tmp_path / "a.json")]) == 0
    (row,) = json.loads((tmp_path / "a.json").read_text())["rows"]
    res = row["steps"]["1"]
    assert set(res["total"]) == {"fast", "onnxruntime", "onnxruntime-raw"}
    assert res["fastest_torch"] == "fast"  # the raw export is not a torch engine
    assert res["graph_passes_speedup"] == pytest.approx(
        res["total"]["onnxruntime-raw"]["median_ms"] / res["total"]["onnxruntime"]["median_ms"]
    )
    assert row["graph_passes"] is not None  # the timed export has them, the raw one not
    table = capsys.readouterr().out
    assert "| ORT without graph passes p50 (ms) |" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("| tiny-pi05 | 1 |"))
    assert line.endswith("x slower) |")
    raw = json.loads((exports / "tiny-pi05-raw" / "export.json").read_text())
    assert raw["graph_passes"] is None and raw["parity"]["passed"]
    # an export without passes is not reused where one with them is asked for
    manifest, seconds = onnx_latency.ensure_export(row["checkpoint"], exports / "tiny-pi05-raw")
    assert seconds is not None and manifest["graph_passes"] is not None
