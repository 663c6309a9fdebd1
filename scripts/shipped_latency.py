"""Chunk latency of the shipped LIBERO policies by denoising steps, interleaved, one thread.

python scripts/shipped_latency.py [REPEATS] [OUT.json]   (docs/libero.md, closed-loop proof)
"""

import json
import sys
import time

import numpy as np
import torch

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions

torch.set_num_threads(1)
t = PolicyRuntime(resolve_policy("libero:teacher"), RuntimeOptions(device="cpu"))
s = PolicyRuntime(resolve_policy("libero:snapflow"), RuntimeOptions(device="cpu"))
obs = t.dummy_observation()
cases = [
    ("teacher", t, 10),
    ("teacher", t, 2),
    ("teacher", t, 1),
    ("snapflow", s, 1),
    ("snapflow", s, 2),
]
times = {(name, n): [] for name, _, n in cases}
for rt in (t, s):
    for _ in range(3):
        rt.predict_chunk(obs)
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 40):
    for name, rt, n in cases:
        a = time.perf_counter()
        rt.predict_chunk(obs, num_steps=n)
        times[(name, n)].append(time.perf_counter() - a)
out = {
    f"{k[0]}_{k[1]}": {
        "p50_ms": 1e3 * float(np.median(v)),
        "p95_ms": 1e3 * float(np.percentile(v, 95)),
    }
    for k, v in times.items()
}
base = out["teacher_10"]["p50_ms"]
for k, v in out.items():
    print(f"| {k} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {base / v['p50_ms']:.2f}x |")
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        json.dump(out, f, indent=1)
