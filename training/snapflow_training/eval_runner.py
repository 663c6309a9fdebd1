"""Runs the held-out evaluation: teacher baselines once (cached), the student at any step."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snapflow_training import data
from snapflow_training.evaluate import (
    Method,
    Predictions,
    build_report,
    latency,
    plot_report,
    predict,
    sample_spread,
    write_report,
)

LOG = logging.getLogger(__name__)
BASELINE_FILE = "teacher_baseline.pt"


@dataclass
class EvalOptions:
    """How much to evaluate."""

    max_samples: int = 256
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    spread_samples: int = 8
    spread_draws: int = 4
    latency_repeats: int = 5


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
    ) -> None:
        self.options = options
        self.cache_key = cache_key or {}
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.action_dim = action_dim
        self.teacher_steps = teacher_steps
        self.autocast = autocast
        self.context = context
        self.indices = data.eval_frame_indices(dataset, options.max_samples)
        self.loader = data.make_eval_loader(
            dataset, self.indices, options.batch_size, options.num_workers
        )
        gen = torch.Generator().manual_seed(options.seed + 12345)
        n = len(self.indices)
        self.noise = torch.randn((n, *noise_shape), generator=gen)
        k = min(options.spread_samples, n)
        self.spread_noise = torch.randn((options.spread_draws, k, *noise_shape), generator=gen)
        self.names = (f"teacher_{teacher_steps}_steps", "teacher_1_step", "snapflow_1_step")
        self._first_batch: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.indices)

    @staticmethod
    def _head(batch: dict[str, Any], size: int) -> dict[str, Any]:
        return {k: v[:size] if isinstance(v, torch.Tensor | list) else v for k, v in batch.items()}

    def _run(self, methods: list[Method]) -> tuple[dict[str, Predictions], dict[str, torch.Tensor]]:
        """Predictions of ``methods`` on all eval frames (streamed batch by batch)."""
        chunks: dict[str, list[torch.Tensor]] = {m.name: [] for m in methods}
        raw, norm, valid = [], [], []
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
            if start == 0:
                self._first_batch = self._head(batch, max(1, self.spread_noise.shape[1]))
            start += size
        targets = {"raw": torch.cat(raw), "norm": torch.cat(norm), "valid": torch.cat(valid)}
        first = self._first_batch
        out = {}
        for m in methods:
            draws = self.spread_noise[:, : first["action"].shape[0]]
            spread = float("nan")
            if draws.shape[0] >= 2 and draws.shape[1] > 0:
                spread = sample_spread(m, first, draws, self.action_dim, self.autocast)
            out[m.name] = Predictions(actions=torch.cat(chunks[m.name]), spread=spread)
        return out, targets

    def timing(self, adapter: Any) -> dict[str, dict[str, float]]:
        """Latency of the three methods, all timed on ``adapter``'s network.

        The teacher rows use the same network with ``s = t`` (identical architecture and
        compute; only the weights differ), so the comparison is not skewed by when each
        network happened to be timed.
        """
        if self.options.latency_repeats < 1:
            return {}
        methods = [
            Method(self.names[0], adapter, self.teacher_steps, target_time=False),
            Method(self.names[1], adapter, 1, target_time=False),
            Method(self.names[2], adapter, 1, target_time=True),
        ]
        one = self._head(self._first_batch, 1)
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
            **self.cache_key,
        }

    def load_baseline(self, cache_file: Path) -> dict[str, Predictions] | None:
        """Cached teacher predictions, or None when missing or made for other settings."""
        if not cache_file.is_file():
            return None
        saved = torch.load(cache_file, map_location="cpu", weights_only=False)
        if saved.get("key") != self._cache_key():
            LOG.info("teacher baseline cache %s is stale", cache_file)
            return None
        return saved["predictions"]

    def teacher_baseline(self, adapter: Any, cache_file: Path | None) -> dict[str, Predictions]:
        """Teacher N-step and naive 1-step predictions (saved to ``cache_file``)."""
        methods = [
            Method(self.names[0], adapter, self.teacher_steps, target_time=False),
            Method(self.names[1], adapter, 1, target_time=False),
        ]
        preds, _ = self._run(methods)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            torch.save({"key": self._cache_key(), "predictions": preds}, tmp)
            tmp.replace(cache_file)
        return preds

    def evaluate(
        self,
        student_adapter: Any,
        baseline: dict[str, Predictions],
        step: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Evaluate the student's one-step sampling against the cached teacher baseline."""
        preds, targets = self._run([Method(self.names[2], student_adapter, 1, target_time=True)])
        preds = {**baseline, **preds}
        preds = {name: preds[name] for name in self.names}
        for name, lat in self.timing(student_adapter).items():
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
                "latency_note": (
                    f"batch 1, median of {self.options.latency_repeats} runs after a warm-up; "
                    "teacher rows timed on the same network with s = t (identical compute)"
                ),
            },
        )
        if out_dir is not None:
            write_report(report, out_dir / "report.json")
            raw_preds = {name: unnormalise(p.actions) for name, p in preds.items()}
            plot_report(report, raw_preds, targets["raw"], out_dir / "eval.png")
        return report
