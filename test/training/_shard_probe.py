"""Run under a multi-process launcher: record the frames each process's training batches hold.

``python -m torch.distributed.run --standalone --nproc-per-node N _shard_probe.py DATASET OUT``
writes ``OUT/rank_<r>.json``: the frame indices (the dataset's ``index``) of the first
``STRAIGHT`` batches from step 0, and of ``RESUMED`` batches from step ``RESUME_AT`` (the position
a resumed run starts from), as :func:`snapflow_training.distill.process_batches` gives them to
the training loop. Used by ``test_distill_multiprocess.py``.
"""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path

BATCH = 4
SEED = 3
STRAIGHT = 14
RESUME_AT = 5
RESUMED = 7


def main(dataset: str, out: str, policy: str) -> None:
    """Record this process's batches (see the module docstring)."""
    from snapflow_training import data
    from snapflow_training.distill import process_batches
    from snapflow_training.run_support import make_accelerator

    from snapflow_ros.policies import resolve_policy
    from snapflow_ros.runtime import checkpoint as ckpt

    accelerator = make_accelerator("cpu", find_unused=False)
    directory = resolve_policy(policy)
    config = ckpt.load_policy_config(directory, ckpt.read_policy_type(directory), "cpu", None)
    split = data.make_split(dataset, config, "1")
    train_set = data.load_episodes(split, split.train_episodes)

    def frames(step: int, count: int) -> list[list[int]]:
        batches = process_batches(train_set, BATCH, SEED, 0, step, accelerator)
        return [[int(i) for i in b["index"]] for b in islice(batches, count)]

    record = {
        "rank": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "train_episodes": split.train_episodes,
        "straight": frames(0, STRAIGHT),
        "resumed": frames(RESUME_AT, RESUMED),
    }
    path = Path(out) / f"rank_{accelerator.process_index}.json"
    path.write_text(json.dumps(record))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:4])
