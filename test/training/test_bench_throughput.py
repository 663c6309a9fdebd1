"""Argument checks of the distillation throughput benchmark (its run is in test/bench)."""

from __future__ import annotations

import pytest
from snapflow_training import bench_throughput


@pytest.mark.parametrize(
    "argv",
    [
        ["--policies", "act"],
        ["--dtypes", "float16"],
        ["--steps", "1"],
        ["--batch-size", "0"],
        ["--size", "huge"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_throughput.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_markdown_lists_every_row():
    rows = [
        {"policy": "pi05", "size": "tiny", "dtype": "float32", "batch_size": 4, "steps": 4,
         "samples_per_s": 12.34, "wall_s": 1.0},
        {"policy": "smolvla", "size": "full", "dtype": "bfloat16", "batch_size": 2, "steps": 6,
         "samples_per_s": None, "wall_s": 9.0},
    ]  # fmt: skip
    text = bench_throughput.markdown(rows)
    assert "| pi05 | tiny | float32 | 4 | 4 | 12.3 | 1.0 |" in text
    assert "| smolvla | full | bfloat16 | 2 | 6 | n/a | 9.0 |" in text
