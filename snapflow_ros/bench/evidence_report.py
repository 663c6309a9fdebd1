"""The GPU evidence report: one JSON file and one markdown file, rewritten after every item.

Only measured values are shown: the headline table and the gap to the latency targets are
computed from the latency and profile items that finished; anything that did not run says
so (failed, timeout, crashed, skipped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from snapflow_ros.bench.evidence_plan import TARGET_MS

JSON_NAME = "gpu_evidence.json"
MARKDOWN_NAME = "gpu_evidence.md"
PARTS = (
    "preprocess",
    "vision encoder",
    "image projector",
    "language prefix",
    "expert (denoise)",
    "postprocess",
)


def _engine_label(item: dict[str, Any], row: dict[str, Any]) -> str:
    label = row["engine"]
    if item.get("compile_mode", "default") != "default" and "compiled" in label:
        label += f" ({item['compile_mode']})"
    return label


def latency_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (policy, engine) of the finished latency items."""
    flat = []
    for item in report["items"]:
        if item["kind"] != "latency" or item["status"] != "ok":
            continue
        memory = item.get("gpu_memory") or {}
        for row in item["rows"]:
            steps = row["steps"]
            one, ten = steps.get("1"), steps.get("10")
            flat.append(
                {
                    "policy": row["policy"],
                    "engine": _engine_label(item, row),
                    "dtype": row["dtype"],
                    "one_step_ms": one["total"]["median_ms"] if one else None,
                    "one_step_p90_ms": one["total"]["p90_ms"] if one else None,
                    "ten_step_ms": ten["total"]["median_ms"] if ten else None,
                    "prefix_ms": one["prefix"]["median_ms"] if one else None,
                    "denoise_step_ms": (ten or one)["denoise_step"]["median_ms"],
                    "ratio_10_to_1_denoise": row.get("ratio_10_to_1", {}).get("denoise"),
                    "load_s": row.get("load_s"),
                    "item_peak_allocated_gib": memory.get("max_allocated_gib"),
                }
            )
    return flat


def gaps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per policy: the fastest measured one-step chunk, its target, and the profile if any."""
    out: dict[str, dict[str, Any]] = {}
    rows = [r for r in latency_rows(report) if r["one_step_ms"] is not None]
    for policy, target in TARGET_MS.items():
        mine = [r for r in rows if r["policy"] == policy]
        if not mine:
            continue
        best = min(mine, key=lambda r: r["one_step_ms"])
        entry: dict[str, Any] = {
            "best_one_step_ms": best["one_step_ms"],
            "engine": best["engine"],
            "target_ms": target,
            "over_target_ms": best["one_step_ms"] - target,
        }
        profile = next(
            (
                i
                for i in report["items"]
                if i["kind"] == "profile" and i["policy"] == policy and i["status"] == "ok"
            ),
            None,
        )
        if profile is not None:
            row = profile["rows"][0]
            entry["profile"] = {
                "engine": row["engine"],
                "total_ms": row["total_ms"],
                "parts_ms": row["parts_ms"],
            }
        out[policy] = entry
    return out


def _blank_none(value: Any) -> str:
    return "" if value is None else str(value)


def _ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else ""


def _headline(report: dict[str, Any]) -> list[str]:
    rows = latency_rows(report)
    if not rows:
        return ["No latency item has finished."]
    lines = [
        "| policy | engine | dtype | 1-step chunk p50 (p90) | 10-step chunk p50 | prefix p50 "
        "| one denoise step p50 | 10/1 denoise | load + warm-up | item GPU peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["ratio_10_to_1_denoise"]
        peak = r["item_peak_allocated_gib"]
        lines.append(
            f"| {r['policy']} | {r['engine']} | {r['dtype']} "
            f"| {_ms(r['one_step_ms'])} ({_ms(r['one_step_p90_ms'])}) | {_ms(r['ten_step_ms'])} "
            f"| {_ms(r['prefix_ms'])} | {r['denoise_step_ms']:.2f} ms "
            f"| {f'{ratio:.2f}x' if ratio else ''} | {r['load_s']} s "
            f"| {f'{peak} GiB' if peak is not None else 'n/a'} |"
        )
    return lines


def _gap_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for policy, g in gaps(report).items():
        lines.append(
            f"- {policy}: fastest one-step chunk {g['best_one_step_ms']:.1f} ms ({g['engine']}), "
            f"target {g['target_ms']:.0f} ms: {g['over_target_ms']:+.1f} ms."
        )
        if "profile" in g:
            p = g["profile"]
            parts = ", ".join(f"{k} {p['parts_ms'][k]:.1f}" for k in PARTS if k in p["parts_ms"])
            lines.append(
                f"  Profile of one one-step chunk ({p['engine']} engine, {p['total_ms']:.1f} ms, "
                f"ms per part): {parts}."
            )
    return lines or ["No one-step latency has been measured yet."]


def _machine_line(report: dict[str, Any]) -> str:
    env = report.get("environment") or {}
    smi = report.get("nvidia_smi") or {}
    versions = env.get("versions", {})
    gpu = smi.get("name") or env.get("gpu") or "none"
    parts = [
        f"GPU: {gpu}",
        f"driver {smi.get('driver_version', 'n/a')}",
        f"CUDA (torch) {env.get('torch_cuda', 'n/a')}",
        f"CPU {env.get('cpu', 'n/a')} ({env.get('cpu_count', '?')} cores)",
    ]
    parts += [f"{k} {versions.get(k)}" for k in ("torch", "transformers", "lerobot", "numpy")]
    return "; ".join(parts) + "."


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as markdown (headline, gap to targets, item status, details)."""
    s = report["settings"]
    title = "# GPU evidence"
    lines = [title, ""]
    if report["dry_run"]:
        lines += [
            f"**DRY RUN: tiny models on {s['device']}. These numbers only show that the script "
            "works; they are not a measurement of the targets.**",
            "",
        ]
    lines += [
        f"Status: {report['status']}; started {report['started']}, {report['elapsed_s']:.0f} s "
        f"of a {report['budget_s']:.0f} s budget.",
        "",
        _machine_line(report),
        "",
        f"Settings: {s['size']} models (random weights), {s['dtype']}, batch 1, steps "
        f"{list(s['steps'])}, {s['repeats']} repeats per step count; profile engine "
        f"{s['profile_engine']}; distillation batch {s['distill_batch']}, "
        f"{s['distill_steps']} timed steps after {s['distill_warmup']}.",
        "",
        "## One-step and 10-step chunk latency",
        "",
        *_headline(report),
        "",
        "## Gap to the one-step targets",
        "",
        *_gap_lines(report),
        "",
        "## Items (priority order)",
        "",
        "| item | status | seconds | checkpoint build (s) | GPU peak allocated / reserved | note |",
        "|---|---|---|---|---|---|",
    ]
    for item in report["items"]:
        memory = item.get("gpu_memory")
        mem = f"{memory['max_allocated_gib']} / {memory['max_reserved_gib']} GiB" if memory else ""
        note = item.get("error") or item.get("reason") or ""
        lines.append(
            f"| {item['name']} | {item['status']} | {_blank_none(item.get('seconds'))} "
            f"| {_blank_none(item.get('checkpoint_s'))} | {mem} | {note[:200]} |"
        )
    for item in report["items"]:
        if item["status"] == "ok" and item.get("markdown"):
            lines += ["", f"### {item['name']}", "", item["markdown"]]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    """Write ``gpu_evidence.json`` and ``gpu_evidence.md`` into ``out_dir`` (atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    full = {**report, "latency_summary": latency_rows(report), "gaps": gaps(report)}
    _atomic_write(out_dir / JSON_NAME, json.dumps(full, indent=2))
    _atomic_write(out_dir / MARKDOWN_NAME, render_markdown(report))
