"""The benchmark suite runner: sections in their own processes, one combined report."""

from __future__ import annotations

import json
import sys

import pytest

from snapflow_ros.bench import suite


def test_ci_profile_runs_sections_and_writes_the_combined_report(tmp_path, capsys, monkeypatch):
    # the runtime section compiles in CI form; keep this test to the cheapest engines
    monkeypatch.setitem(
        suite.PROFILES["ci"],
        "runtime",
        ["--policies", "pi05", "--sizes", "tiny", "--steps", "1,10", "--engines", "eager,fast",
         "--repeats", "2"],
    )  # fmt: skip
    monkeypatch.setitem(suite.PROFILES["ci"], "distill", ["--policies", "pi05", "--steps", "4",
                                                          "--batch-size", "4"])  # fmt: skip
    code = suite.main(
        ["--sections", "runtime,distill", "--device", "cpu", "--out-dir", str(tmp_path)]
    )
    assert code == 0
    report = json.loads((tmp_path / "suite.json").read_text())
    assert [s["section"] for s in report["sections"]] == ["runtime", "distill"]
    runtime, distill = report["sections"]
    assert runtime["status"] == distill["status"] == "ok"
    assert "--device cpu" in runtime["command"] and runtime["seconds"] > 0
    assert {r["engine"] for r in runtime["result"]["rows"]} == {"eager", "fast"}
    (row,) = distill["result"]["rows"]
    assert row["policy"] == "pi05" and row["samples_per_s"] > 0
    assert report["machine"]["versions"]["torch"]
    text = (tmp_path / "suite.md").read_text()
    assert "## runtime (ok)" in text and "## distill (ok)" in text
    assert "| pi05 | tiny | float32 | fast | 1 |" in text
    assert text in capsys.readouterr().out
    assert json.loads((tmp_path / "runtime.json").read_text())["rows"]


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.PROFILES["ci"], "runtime", ["--policies", "act"])  # exits 2
    monkeypatch.setitem(suite.PROFILES["ci"], "sim", [])
    monkeypatch.setattr(
        suite,
        "unavailable_reason",
        lambda section: "not here" if section == "sim" else None,
    )
    code = suite.main(["--sections", "runtime,sim", "--out-dir", str(tmp_path)])
    assert code == 1
    report = json.loads((tmp_path / "suite.json").read_text())
    runtime, sim = report["sections"]
    assert runtime["status"] == "failed" and runtime["exit_code"] == 2
    assert "--policies" in runtime["output_tail"]
    assert sim == {**sim, "status": "skipped", "reason": "not here"}
    assert "## sim (skipped)" in (tmp_path / "suite.md").read_text()


def test_section_commands_pass_the_device_only_where_it_applies(tmp_path):
    for section in suite.SECTIONS:
        cmd = suite.section_command(section, "full", "cuda", tmp_path / "x.json")
        assert cmd[:3] == [sys.executable, "-m", suite.MODULES[section]]
        assert ("--device" in cmd) == (section in suite.DEVICE_SECTIONS)
        assert cmd[cmd.index("--out") + 1] == str(tmp_path / "x.json")


@pytest.mark.parametrize(
    "argv", [["--sections", "gpu"], ["--profile", "huge"], ["--device", "tpu"], ["--sections", ""]]
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        suite.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
