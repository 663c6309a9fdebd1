"""SnapFlow self-distillation of a LeRobot SmolVLA / pi0.5 checkpoint on a LeRobotDataset.

:func:`distill` trains (or resumes) a run and writes a SnapFlow checkpoint; :func:`evaluate_only`
evaluates one. Several processes (CPUs or GPUs; ``torchrun`` or ``accelerate launch``) run the
same entry point data-parallel: N processes x ``--batch-size`` B compute what one process with
batch N*B computes, up to float summation order (docs/distillation.md, Multi-process).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import checkpoint as ckpt
from snapflow_ros.runtime.adapters import make_adapter
from snapflow_ros.runtime.policy_runtime import resolve_device
from snapflow_training import checkpointing as cp
from snapflow_training import data, normalization
from snapflow_training.errors import DistillError
from snapflow_training.eval_runner import BASELINE_FILE, Baseline, EvalOptions, Evaluator
from snapflow_training.objective import BatchShard
from snapflow_training.run_support import (
    RunLog,
    StopFlag,
    autocast_factory,
    describe_processes,
    free_memory,
    isolated_rng,
    launcher_mismatch,
    make_accelerator,
    quiet_unless_main,
    seed_everything,
    step_generator,
    sum_across_processes,
)
from snapflow_training.schedule import WarmupCosine, make_optimizer, make_scheduler
from snapflow_training.settings import (
    RUN_FILE,
    DistillSettings,
    check_output,
    check_resume_compatible,
    create_output,
    read_run_file,
    write_run_file,
)
from snapflow_training.student import (
    DistillModule,
    LoadedPolicy,
    attach_fresh_target_time,
    disable_gradient_checkpointing,
    load_policy,
    set_trainable,
)

LOG = logging.getLogger(__name__)
EVAL_DIR = "eval"


@dataclass
class DistillResult:
    """What a call of :func:`distill` / :func:`evaluate_only` produced."""

    output: Path
    step: int
    finished: bool
    model_dir: Path | None = None
    report: dict[str, Any] | None = None
    samples_per_s: float | None = None
    interrupted: bool = False
    main_process: bool = True
    num_processes: int = 1


# ---------------------------------------------------------------------------- helpers
def _local(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


# ---------------------------------------------------------------------------- setup
def _preflight(settings: DistillSettings) -> Path:
    """Fast checks, in the order a user would want them: numbers, output, dataset, policy."""
    settings.policy = _local(settings.policy)
    settings.dataset = _local(settings.dataset)
    settings.validate()
    out = check_output(settings)
    data.resolve_dataset(settings.dataset)
    try:
        checkpoint_dir = resolve_policy(settings.policy)
        policy_type = ckpt.read_policy_type(checkpoint_dir)
        config = ckpt.load_policy_config(checkpoint_dir, policy_type, "cpu", None)
    except ValueError as exc:  # a CheckpointError, or an unknown tiny: / libero: name
        raise DistillError(str(exc)) from exc
    if (checkpoint_dir / ckpt.SNAPFLOW_META).is_file():
        raise DistillError(
            f"--policy {checkpoint_dir} is already a SnapFlow checkpoint; pass the teacher it "
            "was distilled from (and --resume to continue a run)"
        )
    # features fit the policy?
    data.make_split(settings.dataset, config, settings.eval_episodes, settings.renames())
    return out


def _load(settings: DistillSettings, device: str, snapflow: bool | None, name: str) -> LoadedPolicy:
    try:
        loaded = load_policy(name, device, settings.vlm_path, settings.tokenizer_path, snapflow)
    except ckpt.CheckpointError as exc:
        raise DistillError(str(exc)) from exc
    data.set_rename_map(loaded.preprocessor, settings.renames())
    return loaded


def _normalisation(settings: DistillSettings, loaded: LoadedPolicy, split: data.DataSplit) -> None:
    """Warn when the dataset's statistics differ widely from the checkpoint's; with
    ``--normalization-stats dataset`` use the dataset's."""
    rename = settings.renames()
    dataset_stats = {rename.get(k, k): v for k, v in (split.meta.stats or {}).items()}
    ours = normalization.checkpoint_stats(loaded.preprocessor)
    differences = normalization.compare_stats(ours, dataset_stats)
    if settings.normalization_stats == "dataset":
        replaced = normalization.use_dataset_stats(
            [loaded.preprocessor, loaded.postprocessor], split.meta.stats or {}, rename
        )
        LOG.info("normalising with the dataset's statistics for %s", ", ".join(replaced))
    elif differences:
        LOG.warning(
            "the dataset's normalisation statistics differ widely from the checkpoint's, which "
            "distill keeps (the teacher was trained with them): %s. Pass --normalization-stats "
            "dataset to use the dataset's, as lerobot-train does when fine-tuning.",
            "; ".join(differences),
        )


def _evaluator(
    settings: DistillSettings,
    split: data.DataSplit,
    loaded: LoadedPolicy,
    noise_shape: tuple[int, int],
    autocast: Callable[[], Any],
    trained_jumps: list[float] | None,
) -> Evaluator | None:
    if not split.eval_episodes:
        return None
    dataset = data.load_episodes(split, split.eval_episodes)
    options = EvalOptions(
        max_samples=settings.eval_samples,
        batch_size=settings.eval_batch_size or settings.batch_size,
        num_workers=settings.num_workers,
        seed=settings.seed,
        fidelity_frames=settings.fidelity_frames,
        fidelity_draws=settings.fidelity_draws,
        mode_dim=settings.mode_dim,
        mode_group=settings.mode_group,
        latency_repeats=settings.latency_repeats,
        student_steps=tuple(settings.eval_student_steps),
    )
    context = {
        "teacher": settings.policy,
        "dataset": settings.dataset,
        "eval_episodes": split.eval_episodes,
        "policy_type": loaded.policy_type,
        "teacher_num_steps": loaded.teacher_steps,
    }
    return Evaluator(
        dataset,
        loaded.preprocessor,
        loaded.postprocessor,
        noise_shape,
        loaded.action_dim,
        loaded.teacher_steps,
        options,
        autocast,
        context,
        cache_key={
            "teacher": settings.policy,
            "dtype": settings.dtype,
            "normalization_stats": settings.normalization_stats,
        },
        trained_jumps=trained_jumps,
    )


# ---------------------------------------------------------------------------- training
def process_batches(
    train_set: Any, batch_size: int, seed: int, num_workers: int, step: int, accelerator: Any
) -> Iterator[dict[str, Any]]:
    """Endless batches of this process, positioned after ``step`` optimizer steps.

    One (seed, epoch) permutation is cut into batches of ``batch_size``; with N processes,
    Accelerate's batch sharding gives process r the batches ``N*k + r`` (each step's global
    batch is N consecutive batches, rank 0's first: the batch of one process with
    ``N * batch_size``). Where an epoch's batches do not fill the last step, Accelerate
    completes it with the epoch's first samples (``even_batches``).
    """
    loader, sampler = data.make_train_loader(train_set, batch_size, seed, num_workers)
    data.position_sampler(sampler, step, batch_size, accelerator.num_processes)
    return data.cycle(accelerator.prepare_data_loader(loader))


class Trainer:
    """One distillation run: model, data, optimizer, checkpoints, logs."""

    def __init__(self, settings: DistillSettings, out: Path, accelerator: Any) -> None:
        self.s = settings
        self.out = out
        self.acc = accelerator
        self.device = self.acc.device
        self.main = self.acc.is_main_process
        self.rank = self.acc.process_index
        self.autocast = autocast_factory(self.device, settings.dtype)
        self.teacher = _load(settings, str(self.device), False, settings.policy)
        if disable_gradient_checkpointing(self.teacher.policy):
            LOG.info("gradient checkpointing of the checkpoint turned off (see student.py)")
        recorded = read_run_file(out) if settings.resume else None
        if recorded is not None:
            check_resume_compatible(settings, recorded)
        self.split = data.make_split(
            settings.dataset, self.teacher.config, settings.eval_episodes, settings.renames()
        )
        _normalisation(settings, self.teacher, self.split)
        self.train_set = data.load_episodes(self.split, self.split.train_episodes)
        self.embedding = attach_fresh_target_time(self.teacher)
        self.trainable = set_trainable(
            self.teacher.policy, self.teacher.policy_type, settings.train
        )
        self.objective = settings.objective()
        self.module = DistillModule(
            self.teacher.policy,
            self.teacher.policy_type,
            self.embedding,
            self.objective,
            train_prefix=settings.train == "all",
        )
        if self.acc.num_processes > 1:
            self.module.shard = BatchShard(self.rank, self.acc.num_processes, sum_across_processes)
        cfg = self.teacher.config
        params = [p for p in self.module.parameters() if p.requires_grad]
        self.params = params
        weight_decay = settings.weight_decay
        if weight_decay is None:
            weight_decay = float(getattr(cfg, "optimizer_weight_decay", 0.0))
        self.grad_clip = settings.grad_clip
        if self.grad_clip is None:
            self.grad_clip = float(getattr(cfg, "optimizer_grad_clip_norm", 1.0))
        betas = tuple(getattr(cfg, "optimizer_betas", (0.9, 0.95)))
        self.optimizer = make_optimizer(params, settings.lr, weight_decay, betas)  # type: ignore[arg-type]
        self.schedule = WarmupCosine(
            settings.lr, settings.min_lr, settings.warmup(), settings.steps, settings.schedule
        )
        self.scheduler = make_scheduler(self.optimizer, self.schedule)
        self.generator = torch.Generator(device=self.device)
        noise_shape = self.module.adapter.noise_shape(1)[1:]
        self.trained_jumps = self.objective.trained_jumps()
        self.evaluator = _evaluator(
            settings, self.split, self.teacher, noise_shape, self.autocast, self.trained_jumps
        )
        self.step = 0
        self.baseline = None
        self.settings_record = {
            "objective": asdict(self.objective),
            "train": settings.train,
            "lr": settings.lr,
            "min_lr": settings.min_lr,
            "warmup_steps": settings.warmup(),
            "schedule": settings.schedule,
            "weight_decay": weight_decay,
            "grad_clip": self.grad_clip,
            "batch_size": settings.batch_size,
            "num_processes": self.acc.num_processes,
            "dtype": settings.dtype,
            "seed": settings.seed,
            "dataset": settings.dataset,
            "train_episodes": len(self.split.train_episodes),
            "eval_episodes": self.split.eval_episodes,
            "normalization_stats": settings.normalization_stats,
            "rename_map": settings.renames(),
        }

    # ---------------------------------------------------------------- state
    def start(self) -> None:
        """Fresh run: create the folder and seed; resume: load the last checkpoint."""
        s = self.s
        if s.resume:
            self._resume()
        else:
            if self.main:
                create_output(self.out, clear=s.overwrite)
                write_run_file(
                    self.out,
                    s,
                    {
                        "teacher_dir": str(self.teacher.checkpoint_dir),
                        "policy_type": self.teacher.policy_type,
                        "train_episodes": self.split.train_episodes,
                        "eval_episodes": self.split.eval_episodes,
                        "trainable_parameters": sum(p.numel() for p in self.params),
                        "total_parameters": sum(p.numel() for p in self.module.parameters()),
                    },
                )
            self.acc.wait_for_everyone()
            seed_everything(s.seed + self.rank)
        if self.evaluator is not None and self.main:
            self.baseline = self._teacher_baseline()
        self.acc.wait_for_everyone()

    def _resume(self) -> None:
        path = cp.last_checkpoint(self.out)
        if path is None:
            raise DistillError(f"--resume: {self.out} holds no training checkpoint")
        try:
            cp.load_student_weights(
                self.teacher.policy, self.teacher.policy_type, self.embedding, path / cp.MODEL_DIR
            )
        except ckpt.CheckpointError as exc:
            raise DistillError(f"cannot resume from {path}: {exc}") from exc
        state = cp.load_training_state(path, self.rank)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])  # the step; the plan is ours
        if self.module.shadow is not None:
            self.module.shadow.load_state_dict(cp.load_shadow(path))
        cp.restore_rng(state["rng"], self.generator)
        self.step = int(state["progress"]["step"])
        LOG.info("resumed from %s at step %d", path, self.step)
        saved = state["progress"].get("num_processes")
        if saved is not None and int(saved) != self.acc.num_processes:
            n, b = self.acc.num_processes, self.s.batch_size
            LOG.warning(
                "the checkpoint was written by %d process(es), this run has %d: it continues "
                "with %d x %d samples per step instead of %d x %d and another data order, not "
                "as the same run (resume with %d process(es) to continue exactly)",
                int(saved), n, n, b, int(saved), b, int(saved),
            )  # fmt: skip

    def _teacher_baseline(self) -> Baseline:
        cache = self.out / EVAL_DIR / BASELINE_FILE
        if self.step == 0:  # the freshly wrapped student IS the teacher (zero-init embedding)
            self.module.eval()
            with isolated_rng():
                return self.evaluator.teacher_baseline(self.module.adapter, cache)
        cached = self.evaluator.load_baseline(cache)
        if cached is not None:
            return cached
        teacher = _load(self.s, str(self.device), False, self.s.policy)
        teacher.policy.eval()
        adapter = make_adapter(teacher.policy, teacher.policy_type, None)
        with isolated_rng():
            baseline = self.evaluator.teacher_baseline(adapter, cache)
        free_memory(teacher, adapter)
        return baseline

    def _meta(self) -> ckpt.SnapFlowMeta:
        return ckpt.SnapFlowMeta(
            base_policy=self.s.policy,
            policy_type=self.teacher.policy_type,
            target_time=self.embedding.spec,
            default_num_steps=1,
            steps_trained=self.step,
            settings=self.settings_record,
            trained_jumps=self.trained_jumps,
        )

    def write_model(self, out_dir: Path) -> Path:
        """Export the student as a SnapFlow checkpoint folder."""
        out = cp.export_snapflow_checkpoint(
            out_dir,
            self.teacher.policy,
            self.embedding,
            self._meta(),
            self.teacher.checkpoint_dir,
            self.teacher.vlm_dir,
            self.teacher.tokenizer_dir,
        )
        if self.s.normalization_stats == "dataset":
            normalization.write_processor_states(
                out, self.teacher.preprocessor, self.teacher.postprocessor
            )
        return out

    def save(self) -> Path:
        """Atomic training checkpoint at the current step (all processes take part)."""
        progress = {
            "samples_seen": self.step * self.s.batch_size * self.acc.num_processes,
            "batch_size": self.s.batch_size,
            "num_processes": self.acc.num_processes,
        }
        if self.main:
            tmp = cp.begin_checkpoint(
                self.out, self.step, self.write_model, self.optimizer, self.scheduler, progress
            )
            if self.module.shadow is not None:
                cp.save_shadow(tmp, self.module.shadow.state_dict())
        self.acc.wait_for_everyone()
        cp.write_rng(self.out, self.step, self.rank, self.generator)
        self.acc.wait_for_everyone()
        path = self.out / cp.CHECKPOINTS_DIR / cp.step_dir_name(self.step)
        if self.main:
            cp.commit_checkpoint(self.out, self.step, self.s.keep_checkpoints)
        self.acc.wait_for_everyone()
        return path

    def evaluate(self) -> dict[str, Any] | None:
        """Evaluate the student's one-step sampling on the held-out episodes (main process)."""
        if self.evaluator is None or not self.main:
            return None
        was_training = self.module.training
        self.module.eval()
        try:
            with isolated_rng():
                report = self.evaluator.evaluate(
                    self.module.adapter,
                    self.baseline,
                    self.step,
                    self.out / EVAL_DIR / cp.step_dir_name(self.step),
                )
        finally:
            self.module.train(was_training)
        return report

    # ---------------------------------------------------------------- loop
    def batches(self) -> Iterator[dict[str, Any]]:
        """This process's batches from the current step on (see :func:`process_batches`)."""
        s = self.s
        return process_batches(
            self.train_set, s.batch_size, s.seed, s.num_workers, self.step, self.acc
        )

    def train_step(self, raw: dict[str, Any], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """One optimizer step on one batch; returns the detached loss terms."""
        batch = self.teacher.preprocessor(raw)
        step_generator(self.generator, self.s.seed, self.step)
        with self.autocast():
            out = model(batch, self.step, self.generator)
        self.acc.backward(out["loss"])
        norm = torch.zeros(())
        if self.grad_clip and self.grad_clip > 0:
            norm = self.acc.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.module.after_optimizer_step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        terms = {k: v.detach().float() for k, v in out.items()}
        terms["grad_norm"] = torch.as_tensor(norm).detach().float()
        return terms

    def run(self, stop: StopFlag) -> DistillResult:
        """Train until ``--steps`` (or ``--stop-after`` / a signal), checkpointing on the way."""
        from tqdm import tqdm

        s = self.s
        log = RunLog(self.out, self.main, self.step if s.resume else None)
        model = self.acc.prepare_model(self.module)
        model.train()
        batches = self.batches()
        bar = tqdm(
            total=s.steps,
            initial=self.step,
            disable=not (self.main and s.progress_bar),
            desc="distill",
            dynamic_ncols=True,
        )
        report, window, window_time, window_samples = None, [], 0.0, 0
        sps_all: list[float] = []
        stop_at = self.step + s.stop_after if s.stop_after else None
        last_eval = None
        try:
            while self.step < s.steps:
                t0 = time.perf_counter()
                raw = next(batches)
                window.append(self.train_step(raw, model))
                window_samples += int(raw["action"].shape[0]) * self.acc.num_processes
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                window_time += time.perf_counter() - t0
                bar.update(1)
                if self.step % s.log_interval == 0 or self.step == s.steps:
                    record = self._record(window, window_samples / max(window_time, 1e-9))
                    sps_all.append(record["samples_per_s"])
                    log.write(record)
                    bar.set_postfix(
                        loss=f"{record['loss']:.4f}",
                        fm=f"{record['flow_matching']:.4f}",
                        cons=f"{record['consistency']:.4f}",
                        sps=f"{record['samples_per_s']:.1f}",
                    )
                    window, window_time, window_samples = [], 0.0, 0
                if s.eval_interval and self.step % s.eval_interval == 0:
                    report, last_eval = self._eval_and_log(log), self.step
                stopping = stop.signal is not None or (stop_at is not None and self.step >= stop_at)
                if (s.save_interval and self.step % s.save_interval == 0) or stopping:
                    self.save()
                if stopping:
                    break
        finally:
            bar.close()
        finished = self.step >= s.steps
        model_dir = None
        if finished:
            if not (s.save_interval and self.step % s.save_interval == 0):
                self.save()
            if self.main:
                model_dir = cp.publish_model(self.out, self.write_model)
            if last_eval != self.step:
                report = self._eval_and_log(log)
        log.close()
        self.acc.wait_for_everyone()
        sps = float(np.median(sps_all)) if sps_all else None
        interrupted = stop.signal is not None
        return DistillResult(
            self.out,
            self.step,
            finished,
            model_dir,
            report,
            sps,
            interrupted,
            main_process=self.main,
            num_processes=self.acc.num_processes,
        )

    def _record(self, window: list[dict[str, torch.Tensor]], sps: float) -> dict[str, Any]:
        means = {k: float(torch.stack([w[k] for w in window]).mean()) for k in window[0]}
        return {
            "step": self.step,
            "loss": means["loss_value"],
            "flow_matching": means["flow_matching"],
            "consistency": means["consistency"],
            "consistency_weight": means["consistency_weight"],
            "grad_norm": means["grad_norm"],
            "lr": float(self.scheduler.get_last_lr()[0]),
            "samples_per_s": sps,
            "samples_seen": self.step * self.s.batch_size * self.acc.num_processes,
        }

    def _eval_and_log(self, log: RunLog) -> dict[str, Any] | None:
        report = self.evaluate()
        if report is not None:
            record: dict[str, Any] = {"step": self.step, "event": "eval"}
            for name, m in report["methods"].items():
                record[f"eval/{name}/mse"] = m["mse"]
                record[f"eval/{name}/sample_spread"] = m["sample_spread"]
                fid = m.get("fidelity") or {}
                if "energy_distance" in fid:
                    record[f"eval/{name}/energy_distance"] = fid["energy_distance"]
                if "mode" in fid:
                    record[f"eval/{name}/commitment"] = fid["mode"]["commitment"]
            if "fidelity_floor" in report:
                record["eval/floor/energy_distance"] = report["fidelity_floor"]["energy_distance"]
            log.write(record)
        self.acc.wait_for_everyone()
        return report


# ---------------------------------------------------------------------------- entry points
ALPHA_ONE_NOTE = (
    "--alpha 1 trains flow matching only: an ablation of the consistency term. Its output is a "
    "SnapFlow checkpoint (not a teacher for distill, and its target-time embedding moves "
    "during training); train teachers with LeRobot's lerobot-train "
    "(python -m snapflow_training.teacher, docs/distillation.md)"
)


def distill(settings: DistillSettings) -> DistillResult:
    """Train (or resume) a SnapFlow student; raises DistillError on bad inputs."""
    settings.validate()
    accelerator = make_accelerator(settings.device, find_unused=settings.train == "all")
    quiet_unless_main(accelerator)
    if settings.alpha >= 1.0:
        LOG.warning(ALPHA_ONE_NOTE)
    out = _preflight(settings)  # bad inputs end here with one line, before anything slow
    LOG.info(describe_processes(accelerator, settings.batch_size))
    mismatch = launcher_mismatch(accelerator, dict(os.environ))
    if mismatch is not None:
        LOG.warning(mismatch)
    accelerator.wait_for_everyone()  # every process checked the folder before anyone writes
    trainer = Trainer(settings, out, accelerator)
    trainer.start()
    with StopFlag() as stop:
        return trainer.run(stop)


@dataclass
class EvaluationSetup:
    """What :func:`evaluation_setup` prepares: the teacher, the evaluator, the student's folder."""

    out: Path
    student_dir: Path
    device: str
    teacher: LoadedPolicy
    evaluator: Evaluator


def evaluation_setup(settings: DistillSettings) -> EvaluationSetup:
    """Check the inputs of ``--eval-only``, load the teacher and build the evaluator."""
    out = _preflight(settings)
    student_dir = Path(settings.student).expanduser() if settings.student else out / cp.MODEL_DIR
    student_meta = ckpt.SnapFlowMeta.read(student_dir)
    if student_meta is None:
        raise DistillError(
            f"--eval-only: {student_dir} is not a SnapFlow checkpoint (pass --student or "
            "an --output whose model/ folder holds one)"
        )
    try:
        device = resolve_device(settings.device)
    except ckpt.CheckpointError as exc:
        raise DistillError(f"--device: {exc}") from exc
    autocast = autocast_factory(torch.device(device), settings.dtype)
    teacher = _load(settings, device, False, settings.policy)
    eval_episodes = settings.eval_episodes
    if (out / RUN_FILE).is_file():  # evaluate on the run's own held-out episodes
        recorded = read_run_file(out).get("eval_episodes")
        if recorded:
            eval_episodes = "[" + ",".join(str(e) for e in recorded) + "]"
    split = data.make_split(settings.dataset, teacher.config, eval_episodes, settings.renames())
    if not split.eval_episodes:
        raise DistillError("--eval-only needs held-out episodes (--eval-episodes > 0)")
    _normalisation(settings, teacher, split)
    noise_shape = make_adapter(teacher.policy, teacher.policy_type).noise_shape(1)[1:]
    evaluator = _evaluator(
        settings, split, teacher, noise_shape, autocast, student_meta.trained_jumps
    )
    assert evaluator is not None
    return EvaluationSetup(out, student_dir, device, teacher, evaluator)


def evaluate_only(settings: DistillSettings) -> DistillResult:
    """Evaluate a SnapFlow checkpoint (``--student`` or ``<output>/model``) against its teacher."""
    setup = evaluation_setup(settings)
    teacher, evaluator, out = setup.teacher, setup.evaluator, setup.out
    create_output(out, clear=False)
    baseline = evaluator.teacher_baseline(
        make_adapter(teacher.policy, teacher.policy_type, None), None
    )
    teacher.policy = None  # free the teacher network before loading the student
    free_memory()
    student = _load(settings, setup.device, True, str(setup.student_dir))
    student.policy.eval()
    adapter = make_adapter(student.policy, student.policy_type, student.target_time)
    step = student.meta.steps_trained if student.meta is not None else 0
    report = evaluator.evaluate(adapter, baseline, step, out / EVAL_DIR / f"eval_only_step_{step}")
    return DistillResult(out, step, True, setup.student_dir, report)
