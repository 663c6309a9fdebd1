"""What the GPU evidence run measures, in priority order (no torch import: cheap to load).

The plan is a list of :class:`EvidenceItem`, each run by :mod:`snapflow_ros.bench.evidence_worker`
with the existing benchmark code. The order puts the numbers the targets are about first, so
that a run cut short by its time budget still has them: bf16 one- and 10-step chunk latency
with the ``eager`` and ``fast`` engines for SmolVLA then pi0.5, then the ``compiled`` engine
at its fullest (CUDA graphs via ``reduce-overhead`` and a compiled prefix) for both, the stage
profile, distillation throughput, and last the ``compiled`` engine in its default mode.
Every item records the GPU memory peak of its process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ItemKind = Literal["latency", "profile", "distill"]
POLICIES = ("smolvla", "pi05")
# One-step chunk latency targets (ms, H100-class GPU, batch 1): docs/performance.md.
TARGET_MS = {"smolvla": 10.0, "pi05": 20.0}


@dataclass(frozen=True)
class EvidenceItem:
    """One measurement: what to run and the longest it may take on the GPU (``max_s``)."""

    name: str
    kind: ItemKind
    policy: str
    engines: tuple[str, ...] = ()
    compile_mode: str = "default"
    compile_prefix: bool = False
    max_s: float = 300.0


@dataclass(frozen=True)
class PlanSettings:
    """Settings shared by every item (model size, precision, repeats, batch sizes)."""

    device: str
    size: str
    dtype: str
    steps: tuple[int, ...]
    repeats: int
    profile_engine: str
    profile_repeats: int
    distill_batch: dict[str, int] = field(default_factory=dict)
    distill_warmup: int = 3
    distill_steps: int = 10
    dry_run: bool = False


def plan_settings(device: str, dry_run: bool) -> PlanSettings:
    """Full-size models in bf16 on the GPU; tiny models and minimal repeats for a dry run.

    A dry run computes in float32: bf16 is far slower on a CPU without native bf16 (the bf16
    paths have their own tests).
    """
    if dry_run:
        return PlanSettings(
            device=device,
            size="tiny",
            dtype="float32",
            steps=(1, 10),
            repeats=2,
            profile_engine="fast",
            profile_repeats=2,
            distill_batch={"smolvla": 2, "pi05": 2},
            distill_warmup=1,
            distill_steps=2,
            dry_run=True,
        )
    # Batches of the real-scale distillation command lines in docs/distillation.md.
    return PlanSettings(
        device=device,
        size="full",
        dtype="bfloat16",
        steps=(1, 10),
        repeats=20,
        profile_engine="fast",
        profile_repeats=10,
        distill_batch={"smolvla": 64, "pi05": 32},
    )


def _latency(policy: str, variant: str, max_s: float) -> EvidenceItem:
    if variant == "eager-fast":
        return EvidenceItem(
            f"latency-{policy}-eager-fast", "latency", policy, ("eager", "fast"), max_s=max_s
        )
    if variant == "compiled-ro-prefix":
        return EvidenceItem(
            f"latency-{policy}-compiled-ro-prefix",
            "latency",
            policy,
            ("compiled",),
            "reduce-overhead",
            True,
            max_s=max_s,
        )
    return EvidenceItem(f"latency-{policy}-compiled", "latency", policy, ("compiled",), max_s=max_s)


def build_plan() -> list[EvidenceItem]:
    """All items in priority order (``max_s`` are generous guesses for an H100 machine)."""
    return [
        _latency("smolvla", "eager-fast", 150),
        _latency("pi05", "eager-fast", 360),  # builds the 16 GB pi0.5 checkpoint first
        _latency("smolvla", "compiled-ro-prefix", 240),
        _latency("pi05", "compiled-ro-prefix", 300),
        EvidenceItem("profile-smolvla", "profile", "smolvla", max_s=90),
        EvidenceItem("profile-pi05", "profile", "pi05", max_s=150),
        EvidenceItem("distill-smolvla", "distill", "smolvla", max_s=150),
        EvidenceItem("distill-pi05", "distill", "pi05", max_s=200),
        _latency("smolvla", "compiled", 180),
        _latency("pi05", "compiled", 240),
    ]


def select(plan: list[EvidenceItem], names: list[str] | None) -> list[EvidenceItem]:
    """The items named (in the order given), or the whole plan; unknown names raise."""
    if not names:
        return list(plan)
    by_name = {item.name: item for item in plan}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown items {unknown}; the plan has {list(by_name)}")
    return [by_name[n] for n in names]


def to_json(settings: PlanSettings, items: list[EvidenceItem]) -> dict[str, Any]:
    """Plan as a JSON-ready dict (what a worker process receives)."""
    return {"settings": asdict(settings), "items": [asdict(item) for item in items]}


def from_json(data: dict[str, Any]) -> tuple[PlanSettings, list[EvidenceItem]]:
    """Inverse of :func:`to_json`."""
    raw = dict(data["settings"])
    raw["steps"] = tuple(raw["steps"])
    items = [EvidenceItem(**{**d, "engines": tuple(d["engines"])}) for d in data["items"]]
    return PlanSettings(**raw), items
