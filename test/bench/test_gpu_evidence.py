"""The GPU evidence script: its CPU dry run, its budget and failure handling, the carried set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from snapflow_ros.bench import evidence_plan, evidence_report, gpu_carry, gpu_evidence

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_evidence.sh"


@pytest.mark.slow
def test_dry_run_of_the_whole_plan_through_the_script(tmp_path, tiny_cache):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SNAPFLOW_CACHE": str(tiny_cache.parent / "bench_cache"),
    }
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", "--dry-run", "--no-install", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # what comes back from the GPU machine: three files, no folders
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_evidence.json",
        "gpu_evidence.log",
        "gpu_evidence.md",
    ]
    report = json.loads((out / "gpu_evidence.json").read_text())
    assert report["dry_run"] and report["status"] == "finished"
    assert report["settings"]["size"] == "tiny" and report["settings"]["device"] == "cpu"
    assert report["environment"]["env"]["TORCH_COMPILE_DISABLE"] == "1"
    assert report["environment"]["versions"]["lerobot"] == metadata.version("lerobot")
    plan = evidence_plan.build_plan()
    assert [i["name"] for i in report["items"]] == [i.name for i in plan]
    assert {i["status"] for i in report["items"]} == {"ok"}
    for item, planned in zip(report["items"], plan, strict=True):
        assert item["seconds"] > 0 and item["gpu_memory"] is None  # no GPU here
        if planned.kind == "latency":
            assert [r["engine"].split("+")[0] for r in item["rows"]] == list(planned.engines)
            for row in item["rows"]:
                assert row["engine"].endswith("+prefix") == planned.compile_prefix
                # the planned step counts, each timed (that N steps make N expert passes is
                # counted in test_runtime_latency.py: times alone can invert on a loaded box)
                assert set(row["steps"]) == {"1", "10"}
                assert all(s["total"]["median_ms"] > 0 for s in row["steps"].values())
        elif planned.kind == "profile":
            (row,) = item["rows"]
            assert row["policy"] == planned.policy and row["steps"] == 1
            # the separately timed parts fit in each total (test_stage_profile.py: the check)
            assert min(row["other_ms_per_repeat"]) >= 0, row
        else:
            (row,) = item["rows"]
            assert row["policy"] == planned.policy and row["batch_size"] == 2
            # the timed steps lie inside the item, which the runner timed on its own
            assert 0 < row["timed_steps"] * row["step_s"] <= item["seconds"] + 0.05, item
            assert len(row["losses"]) == row["warmup_steps"] + 1  # each warm-up, the last
            assert all(loss == loss and loss < 1e6 for loss in row["losses"])
    summary = report["latency_summary"]
    assert len(summary) == 8  # 2 policies x eager, fast, compiled+prefix, compiled
    for policy, target in evidence_plan.TARGET_MS.items():
        gap = report["gaps"][policy]
        fastest = min(r["one_step_ms"] for r in summary if r["policy"] == policy)
        assert gap["best_one_step_ms"] == fastest and gap["target_ms"] == target
        assert gap["profile"]["total_ms"] > 0
    text = (out / "gpu_evidence.md").read_text()
    assert "DRY RUN" in text
    assert all(f"| {i.name} | ok |" in text for i in plan)
    log = (out / "gpu_evidence.log").read_text()
    assert "[evidence] done" in log and "installing" not in log


FAKE_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    plan, results = json.load(open(sys.argv[1])), sys.argv[2]
    def emit(record):
        with open(results, "a") as fh:
            fh.write(json.dumps(record) + "\\n")
    emit({"event": "env", "env": {"versions": {}}})
    for item in plan["items"]:
        name = item["name"]
        emit({"event": "start", "item": name})
        if name.startswith("hang"):
            time.sleep(600)
        if name.startswith("crash"):
            print("worker dies here", flush=True)
            os._exit(3)
        emit({"event": "done", "item": name,
              "result": {"status": "ok", "rows": [], "seconds": 0.1, "gpu_memory": None}})
    """
)


def _fake_run(tmp_path: Path, names: list[str], extra: list[str], hang_max_s: float) -> dict:
    worker = tmp_path / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    args = gpu_evidence.parse_args(
        ["--device", "cpu", "--dry-run", "--out", str(tmp_path / "out"), *extra]
    )
    items = [
        evidence_plan.EvidenceItem(n, "profile", "smolvla", max_s=hang_max_s if n == "hang" else 60)
        for n in names
    ]
    run = gpu_evidence.EvidenceRun(args, evidence_plan.plan_settings("cpu", True), items)
    run.worker_command = lambda plan, results: [sys.executable, str(worker), plan, results]
    code = run.run()
    report = json.loads((tmp_path / "out" / "gpu_evidence.json").read_text())
    assert (code == 0) == all(i["status"] == "ok" for i in report["items"])
    return report


def test_a_hanging_or_crashing_item_is_recorded_and_the_next_still_runs(tmp_path):
    names = ["a", "hang", "b", "crash", "c"]
    report = _fake_run(tmp_path, names, ["--isolate", "none"], hang_max_s=1.5)
    status = {i["name"]: i["status"] for i in report["items"]}
    assert status == {"a": "ok", "hang": "timeout", "b": "ok", "crash": "crashed", "c": "ok"}
    crash = next(i for i in report["items"] if i["name"] == "crash")
    assert "exit code 3" in crash["reason"] and "worker dies here" in crash["output_tail"]


def test_items_that_no_longer_fit_the_budget_are_skipped(tmp_path):
    extra = ["--isolate", "item", "--budget-s", "4", "--reserve-s", "0", "--min-start-s", "1"]
    report = _fake_run(tmp_path, ["a", "hang", "b"], extra, hang_max_s=600)  # killed at 4 s
    assert [i["status"] for i in report["items"]] == ["ok", "timeout", "skipped"]
    assert report["status"] == "finished" and "time budget" in report["items"][2]["reason"]


def test_a_worker_that_cannot_start_fails_every_item(tmp_path):
    args = gpu_evidence.parse_args(["--device", "cpu", "--dry-run", "--out", str(tmp_path)])
    items = evidence_plan.build_plan()[:3]
    run = gpu_evidence.EvidenceRun(args, evidence_plan.plan_settings("cpu", True), items)
    run.worker_command = lambda plan, results: [sys.executable, "-c", "raise SystemExit(5)"]
    assert run.run() == 1
    report = json.loads((tmp_path / "gpu_evidence.json").read_text())
    assert {i["status"] for i in report["items"]} == {"failed"}
    assert "code 5" in report["items"][0]["reason"]


def test_plan_order_selection_and_round_trip():
    plan = evidence_plan.build_plan()
    names = [i.name for i in plan]
    assert len(set(names)) == len(names)
    # the targets' numbers first: eager/fast one- and 10-step latency, SmolVLA then pi0.5
    assert names[:2] == ["latency-smolvla-eager-fast", "latency-pi05-eager-fast"]
    assert [i.kind for i in plan[:4]] == ["latency"] * 4
    picked = evidence_plan.select(plan, ["distill-pi05", "profile-smolvla"])
    assert [i.name for i in picked] == ["distill-pi05", "profile-smolvla"]
    with pytest.raises(ValueError, match="unknown items"):
        evidence_plan.select(plan, ["latency-act"])
    for dry in (False, True):
        settings = evidence_plan.plan_settings("cuda", dry)
        data = json.loads(json.dumps(evidence_plan.to_json(settings, plan)))
        assert evidence_plan.from_json(data) == (settings, plan)
    gpu = evidence_plan.plan_settings("cuda", False)
    assert gpu.size == "full" and gpu.dtype == "bfloat16" and tuple(gpu.steps) == (1, 10)


def test_list_and_bad_arguments(capsys):
    assert gpu_evidence.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(item.name in listed for item in evidence_plan.build_plan())
    for argv in (["--items", "latency-act"], ["--device", "tpu"], ["--budget-s", "0"]):
        with pytest.raises(SystemExit) as exc:
            gpu_evidence.main(argv)
        assert exc.value.code == 2


def test_gap_to_the_targets_uses_the_fastest_measured_engine():
    def latency(engine: str, one: float) -> dict:
        stats = {
            "total": {"median_ms": one, "p90_ms": one},
            "prefix": {"median_ms": one / 2},
            "denoise_step": {"median_ms": 1.0},
        }
        return {"policy": "pi05", "engine": engine, "dtype": "bfloat16", "steps": {"1": stats}}

    report = {
        "items": [
            {"kind": "latency", "status": "ok", "rows": [latency("eager", 90.0)]},
            {"kind": "latency", "status": "timeout", "rows": [latency("fast", 5.0)]},
            {"kind": "latency", "status": "ok", "compile_mode": "reduce-overhead",
             "rows": [latency("compiled+prefix", 26.5)]},
        ]
    }  # fmt: skip
    gaps = evidence_report.gaps(report)
    assert list(gaps) == ["pi05"]  # nothing measured for SmolVLA: no entry
    assert gaps["pi05"]["engine"] == "compiled+prefix (reduce-overhead)"
    assert gaps["pi05"]["over_target_ms"] == pytest.approx(26.5 - 20.0)


def _wheel(folder: Path, name: str, version: str) -> None:
    (folder / f"{name}-{version}-py3-none-any.whl").write_bytes(b"")


def test_carried_wheel_check_finds_missing_extra_duplicated_and_wrong_versions(tmp_path):
    pins = {"lerobot": "0.6.1", "typing-inspect": "0.9.0", "numpy": "2.2.6"}
    _wheel(tmp_path, "lerobot", "0.6.1")
    _wheel(tmp_path, "typing_inspect", "0.9.0")
    _wheel(tmp_path, "numpy", "2.2.6")
    assert gpu_carry.check_wheels(tmp_path, pins) == []
    _wheel(tmp_path, "numpy", "2.5.5")
    _wheel(tmp_path, "opencv_python_headless", "4.13.0.92")
    (tmp_path / "lerobot-0.6.1-py3-none-any.whl").unlink()
    _wheel(tmp_path, "lerobot", "0.6.0")
    problems = "\n".join(gpu_carry.check_wheels(tmp_path, pins))
    assert "two versions of numpy" in problems
    assert "unexpected wheel opencv-python-headless" in problems
    assert "lerobot is 0.6.0, the project runs 0.6.1" in problems


def test_the_carried_versions_are_the_installed_ones_and_the_download_names_them():
    pins = gpu_carry.pinned_versions()
    assert len(pins) == len(gpu_carry.CARRIED)
    assert pins["transformers"] == metadata.version("transformers")
    cmd = gpu_carry.download_command(pins, Path("/x"))
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "--no-deps" in cmd
    assert sum(arg == "--platform" for arg in cmd) == len(gpu_carry.PLATFORMS)
    assert all(f"{name}=={version}" in cmd for name, version in pins.items())


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_carried_size_counts_tracked_and_untracked_files_and_the_carried_folders(tmp_path):
    """Sizes written here, added up by hand: tracked and untracked files travel, ignored
    files and links do not; a carried folder counts file by file."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_bytes(b"build/\n")  # 7 bytes
    (repo / "src" / "tracked.py").write_bytes(b"x" * 100)
    _git(repo, "add", ".gitignore", "src/tracked.py")
    (repo / "untracked.txt").write_bytes(b"y" * 30)
    (repo / "build").mkdir()
    (repo / "build" / "ignored.bin").write_bytes(b"z" * 5000)
    (repo / "link.py").symlink_to(repo / "src" / "tracked.py")
    carried = repo / "build" / "venv"
    (carried / "lib").mkdir(parents=True)
    (carried / "a.so").write_bytes(b"a" * 2000)
    (carried / "lib" / "b.py").write_bytes(b"b" * 400)
    assert gpu_carry.report_size(repo, [])[0] == 7 + 100 + 30
    total, account = gpu_carry.report_size(repo, [carried])
    assert total == 7 + 100 + 30 + 2000 + 400, account
    assert "venv/" in account


def test_the_working_tree_leaves_room_for_the_wheels():
    total, account = gpu_carry.report_size(REPO, [])
    assert SCRIPT in gpu_carry.working_tree_files(REPO)
    prepared = REPO / gpu_carry.WHEEL_DIR
    # without a prepared .whl/: the 47.2 MiB measured when this test was written
    wheels = gpu_carry.size_bytes([prepared]) if prepared.is_dir() else 48 * 2**20
    assert total + wheels < gpu_carry.LIMIT_BYTES, account
