"""The benchmark suite runner: sections in their own processes, one combined report."""

from __future__ import annotations

import json
import sys

import pytest

from snapflow_ros.bench import suite


@pytest.mark.slow
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


def test_a_skipped_section_fails_the_run_unless_skipping_is_allowed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(suite, "unavailable_reason", lambda section: "not here")
    code = suite.main(["--sections", "sim", "--out-dir", str(tmp_path / "strict")])
    assert code == suite.EXIT_SKIPPED == 3
    assert "[suite] skipped: section sim: not here" in capsys.readouterr().err
    report = json.loads((tmp_path / "strict" / "suite.json").read_text())
    assert report["skipped"] == ["section sim: not here"] and report["exit_code"] == 3
    code = suite.main(["--sections", "sim", "--out-dir", str(tmp_path / "allowed"), "--allow-skip"])
    assert code == 0
    report = json.loads((tmp_path / "allowed" / "suite.json").read_text())
    assert report["skipped"] == ["section sim: not here"] and report["allow_skip"] is True


def test_rows_a_section_skipped_count_as_skipped(tmp_path, monkeypatch):
    """A section that ran but skipped rows (the runtime section skips full-size pi0.5 below
    48 GB of RAM, which depends on the machine): a section command writing such a result."""
    result = {"rows": [{"policy": "pi05", "size": "full", "skipped": "needs >= 48 GB"}]}

    def command(section, profile, device, out):
        text = json.dumps(result)
        return [
            sys.executable,
            "-c",
            f"import pathlib; pathlib.Path({str(out)!r}).write_text({text!r})",
        ]

    monkeypatch.setattr(suite, "section_command", command)
    code = suite.main(["--sections", "runtime", "--out-dir", str(tmp_path)])
    assert code == 3
    report = json.loads((tmp_path / "suite.json").read_text())
    (runtime,) = report["sections"]
    assert runtime["status"] == "ok" and runtime["skipped_rows"] == result["rows"]
    assert report["skipped"] == ["runtime pi05/full: needs >= 48 GB"]
    assert "1 row(s) skipped" in (tmp_path / "suite.md").read_text()
    assert suite.main(["--sections", "runtime", "--out-dir", str(tmp_path), "--allow-skip"]) == 0


def test_a_failure_wins_over_skips(tmp_path, monkeypatch):
    failed = {"section": "runtime", "status": "failed"}
    skipped = {"section": "sim", "status": "skipped", "reason": "x"}
    assert suite.exit_code([failed, skipped], allow_skip=False) == 1
    assert suite.exit_code([failed, skipped], allow_skip=True) == 1
    assert suite.exit_code([skipped], allow_skip=False) == 3
    assert suite.exit_code([{"section": "sim", "status": "ok"}], allow_skip=False) == 0


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
