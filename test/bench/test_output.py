"""The shared benchmark output: table printed, JSON with the table written."""

from __future__ import annotations

import json

from snapflow_ros.bench.output import emit


def test_emit_prints_and_writes_json_with_the_table(tmp_path, capsys):
    out = tmp_path / "deep" / "r.json"
    emit({"rows": [1, 2]}, "| a |\n|---|", out)
    captured = capsys.readouterr()
    assert captured.out == "| a |\n|---|\n"
    assert str(out) in captured.err
    assert json.loads(out.read_text()) == {"rows": [1, 2], "markdown": "| a |\n|---|"}


def test_emit_without_out_only_prints(tmp_path, capsys):
    emit({"rows": []}, "table", None)
    assert capsys.readouterr().out == "table\n"
    assert list(tmp_path.iterdir()) == []
