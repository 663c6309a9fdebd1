"""Runs the held-out evaluation: teacher baselines once (cached), the student at any step."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snapflow_training import data
from snapflow_training.evaluate import (
    Method,
    ModeSetup,
    Predictions,
    build_report,
    latency,
    plot_report,
    predict,
    predict_draws,
    write_report,
)

LOG = logging.getLogger(__name__)
BASELINE_FILE = "teacher_baseline.pt"


@dataclass
class EvalOptions:
    """How much to evaluate.

    ``fidelity_frames`` evenly spaced eval frames get ``fidelity_draws`` noise draws each
    (distribution metrics and spread); ``mode_dim`` / ``mode_group``: see the report guide.
    ``student_steps``: step counts the student is also sampled with (rows
    ``snapflow_<N>_steps``, jumps by the trained-jumps rule, as the runtime samples them).
    """

    max_samples: int = 256
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    fidelity_frames: int = 32
    fidelity_draws: int = 16
    mode_dim: int | None = None
    mode_group: str | None = None
    latency_repeats: int = 5
    student_steps: tuple[int, ...] = (2, 4, 10)


@dataclass
class Baseline:
    """Cached teacher predictions: every teacher method, plus the N-step teacher's draws from
    a second noise set (its fidelity floor)."""

    predictions: dict[str, Predictions]
    floor_draws: torch.Tensor | None


def _rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    index = torch.tensor(rows, dtype=torch.long)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value[index]
        elif isinstance(value, list):
            out[key] = [value[r] for r in rows]
        else:
            out[key] = value
    return out


class Evaluator:
    """Evaluation frames of the held-out episodes, their fixed noise, and the metrics."""

    def __init__(
        self,
        dataset: Any,
        preprocessor: Any,
        postprocessor: Any,
        noise_shape: tuple[int, int],
        action_dim: int,
        teacher_steps: int,
        options: EvalOptions,
        autocast: Callable[[], Any],
        context: dict[str, Any],
        cache_key: dict[str, Any] | None = None,
        trained_jumps: Sequence[float] | None = None,
    ) -> None:
        self.options = options
        self.cache_key = cache_key or {}
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.action_dim = action_dim
        self.teacher_steps = teacher_steps
        self.trained_jumps = trained_jumps
        self.autocast = autocast
        self.context = context
        self.indices = data.eval_frame_indices(dataset, options.max_samples)
        self.loader = data.make_eval_loader(
            dataset, self.indices, options.batch_size, options.num_workers
        )
        n = len(self.indices)
        gen = torch.Generator().manual_seed(options.seed + 12345)
        self.noise = torch.randn((n, *noise_shape), generator=gen)
        count = min(options.fidelity_frames, n)
        self.fidelity_positions = (
            sorted({int(i * n / count) for i in range(count)}) if count else []
        )
        k = options.fidelity_draws
        shape = (len(self.fidelity_positions), k, *noise_shape)
        self.draw_noise = torch.randn(shape, generator=gen)
        self.floor_noise = torch.randn(shape, generator=gen)
        self.teacher_name = f"teacher_{teacher_steps}_steps"
        teachers = [self.teacher_name]
        if teacher_steps > 2:
            teachers.append("teacher_2_steps")
        teachers.append("teacher_1_step")
        self.teacher_names = tuple(teachers)
        self.student_name = "snapflow_1_step"
        self.multi_step_names = {
            f"snapflow_{n}_steps": n for n in sorted(set(options.student_steps)) if n > 1
        }
        self.names = (*self.teacher_names, *self.multi_step_names, self.student_name)

    def __len__(self) -> int:
        return len(self.indices)

    def _teacher_methods(self, adapter: Any) -> list[Method]:
        return [
            Method(name, adapter, self._steps(name), target_time=False)
            for name in self.teacher_names
        ]

    def _student_method(self, adapter: Any) -> Method:
        return Method(self.student_name, adapter, 1, True, self.trained_jumps)

    def _student_methods(self, adapter: Any) -> list[Method]:
        """The student at every evaluated step count, the one-step method last."""
        multi = [
            Method(name, adapter, steps, True, self.trained_jumps)
            for name, steps in self.multi_step_names.items()
        ]
        return [*multi, self._student_method(adapter)]

    def _steps(self, name: str) -> int:
        return {self.teacher_name: self.teacher_steps, "teacher_2_steps": 2}.get(name, 1)

    def run_methods(
        self, methods: list[Method], floor: Method | None = None
    ) -> tuple[dict[str, Predictions], dict[str, Any]]:
        """Predictions of ``methods`` on all eval frames (streamed batch by batch).

        ``floor``: a method also sampled with the second noise set on the fidelity frames.
        """
        chunks: dict[str, list[torch.Tensor]] = {m.name: [] for m in methods}
        draws: dict[str, list[torch.Tensor]] = {m.name: [] for m in methods}
        floor_draws: list[torch.Tensor] = []
        raw, norm, valid, fid_raw, fid_valid, groups = [], [], [], [], [], []
        wanted = set(self.fidelity_positions)
        start = 0
        for raw_batch in self.loader:
            size = raw_batch["action"].shape[0]
            raw.append(raw_batch["action"].float().cpu())
            valid.append(~raw_batch["action_is_pad"].cpu())
            batch = self.preprocessor(raw_batch)
            norm.append(batch["action"].float().cpu())
            noise = self.noise[start : start + size]
            for name, chunk in predict(
                methods, batch, noise, self.action_dim, self.autocast
            ).items():
                chunks[name].append(chunk)
            rows = [r for r in range(size) if start + r in wanted]
            if rows:
                first = self.fidelity_positions.index(start + rows[0])
                sub = _rows(batch, rows)
                span = slice(first, first + len(rows))
                out = predict_draws(
                    methods, sub, self.draw_noise[span], self.action_dim, self.autocast
                )
                for name, value in out.items():
                    draws[name].append(value)
                if floor is not None:
                    out = predict_draws(
                        [floor], sub, self.floor_noise[span], self.action_dim, self.autocast
                    )
                    floor_draws.append(out[floor.name])
                index = torch.tensor(rows)
                fid_raw.append(raw_batch["action"][index].float().cpu())
                fid_valid.append(~raw_batch["action_is_pad"][index].cpu())
                groups.extend(self._groups(raw_batch, rows))
            start += size
        targets: dict[str, Any] = {
            "raw": torch.cat(raw),
            "norm": torch.cat(norm),
            "valid": torch.cat(valid),
            "floor_draws": torch.cat(floor_draws) if floor_draws else None,
        }
        if fid_raw:
            targets["mode"] = (torch.cat(fid_raw), torch.cat(fid_valid), groups)
        out_preds = {
            m.name: Predictions(
                actions=torch.cat(chunks[m.name]),
                draws=torch.cat(draws[m.name]) if draws[m.name] else None,
            )
            for m in methods
        }
        return out_preds, targets

    def _groups(self, raw_batch: dict[str, Any], rows: list[int]) -> list[str]:
        key = self.options.mode_group
        if key is None or key not in raw_batch:
            return ["all"] * len(rows)
        values = raw_batch[key]
        return [f"{key}={float(torch.as_tensor(values[r]).flatten()[0]):g}" for r in rows]

    def _mode_setup(self, targets: dict[str, Any]) -> ModeSetup | None:
        if self.options.mode_dim is None or "mode" not in targets:
            return None
        recorded, valid, groups = targets["mode"]
        if not 0 <= self.options.mode_dim < recorded.shape[-1]:
            raise ValueError(
                f"--mode-dim {self.options.mode_dim} is out of range for a "
                f"{recorded.shape[-1]}-D action"
            )
        use_groups = groups if self.options.mode_group is not None else None
        return ModeSetup(self.options.mode_dim, recorded, valid, use_groups)

    def timing(self, adapter: Any, batch: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Latency of every method, all timed on ``adapter``'s network.

        The teacher rows use the same network with ``s = t`` (identical architecture and
        compute; only the weights differ), so the comparison is not skewed by when each
        network happened to be timed.
        """
        if self.options.latency_repeats < 1:
            return {}
        methods = [*self._teacher_methods(adapter), self._student_method(adapter)]
        one = _rows(batch, [0])
        return latency(
            methods,
            one,
            self.noise[:1],
            self.action_dim,
            self.autocast,
            self.options.latency_repeats,
        )

    def _cache_key(self) -> dict[str, Any]:
        return {
            "indices": self.indices,
            "seed": self.options.seed,
            "steps": self.teacher_steps,
            "fidelity": self.fidelity_positions,
            "draws": self.options.fidelity_draws,
            **self.cache_key,
        }

    def load_baseline(self, cache_file: Path) -> Baseline | None:
        """Cached teacher predictions, or None when missing or made for other settings."""
        if not cache_file.is_file():
            return None
        saved = torch.load(cache_file, map_location="cpu", weights_only=False)
        if saved.get("key") != self._cache_key() or not isinstance(saved.get("baseline"), Baseline):
            LOG.info("teacher baseline cache %s is stale", cache_file)
            return None
        return saved["baseline"]

    def teacher_baseline(self, adapter: Any, cache_file: Path | None) -> Baseline:
        """Teacher N-step, 2-step and naive 1-step predictions (saved to ``cache_file``)."""
        methods = self._teacher_methods(adapter)
        preds, targets = self.run_methods(methods, floor=methods[0])
        baseline = Baseline(preds, targets["floor_draws"])
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            torch.save({"key": self._cache_key(), "baseline": baseline}, tmp)
            tmp.replace(cache_file)
        return baseline

    def evaluate(
        self,
        student_adapter: Any,
        baseline: Baseline,
        step: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Evaluate the student (one step, and ``student_steps``) against the cached teacher."""
        preds, targets = self.run_methods(self._student_methods(student_adapter))
        preds = {**baseline.predictions, **preds}
        preds = {name: preds[name] for name in self.names}
        first = next(iter(self.loader))
        for name, lat in self.timing(student_adapter, self.preprocessor(first)).items():
            preds[name].latency = lat

        def unnormalise(actions: torch.Tensor) -> torch.Tensor:
            return self.postprocessor(actions).float().cpu()

        report = build_report(
            preds,
            targets["norm"],
            targets["raw"],
            targets["valid"],
            unnormalise,
            {
                **self.context,
                "step": step,
                "num_samples": len(self.indices),
                "trained_jumps": self.trained_jumps,
                "latency_note": (
                    f"batch 1, median of {self.options.latency_repeats} runs after a warm-up; "
                    "teacher rows timed on the same network with s = t (identical compute)"
                ),
            },
            floor_draws=baseline.floor_draws,
            mode=self._mode_setup(targets),
        )
        if out_dir is not None:
            write_report(report, out_dir / "report.json")
            raw_preds = {name: unnormalise(p.actions) for name, p in preds.items()}
            plot_report(report, raw_preds, targets["raw"], out_dir / "eval.png")
        return report
