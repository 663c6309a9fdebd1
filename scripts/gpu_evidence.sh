#!/usr/bin/env bash
# GPU evidence in one prepared call (docs/performance.md, section "GPU evidence").
#
#   scripts/gpu_evidence.sh --prepare     here (network): download the carried wheels into
#                                         .whl/, check the carried size (< 64 MiB), print the
#                                         device call (command, carry list, timeout)
#   scripts/gpu_evidence.sh [OPTIONS]     on the GPU machine: install .whl/ into a private
#                                         site folder, measure, write JSON + markdown + log
#                                         into $OUT (or --out)
#   scripts/gpu_evidence.sh --device cpu --dry-run [--no-install]
#                                         the same plan with tiny models (the test suite's check)
#
# OPTIONS go to `python -m snapflow_ros.bench.gpu_evidence` (--budget-s, --items, --list, --out,
# --isolate, ...); --no-install skips the wheel install (the interpreter has everything).
# PYTHON picks the interpreter (default python3; .venv/bin/python for --prepare).
set -euo pipefail

started_at=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

prepare=0
install=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=1 ;;
    --no-install) install=0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

if [ "$prepare" = 1 ]; then
  # The project venv: its installed versions are the ones carried.
  exec "${PYTHON:-$repo/.venv/bin/python}" -m snapflow_ros.bench.gpu_carry prepare --repo "$repo" "${args[@]}"
fi

py=${PYTHON:-python3}
out=${OUT:-$repo/artifacts/gpu_evidence}
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --out ] && [ $((i + 1)) -lt ${#args[@]} ]; then
    out=${args[i + 1]}
  fi
done
mkdir -p "$out"
site=${SNAPFLOW_EVIDENCE_SITE:-/tmp/snapflow_evidence_site}
stand_in=${SNAPFLOW_EVIDENCE_STAND_IN:-/tmp/snapflow_evidence_stand_in}

# Nothing may try the network (the GPU machine has none: a Hub lookup would only time out).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE || true

{
  echo "[evidence] $(date -Is) repo $repo, python $("$py" --version 2>&1), out $out"
  if [ "$install" = 1 ] && compgen -G ".whl/*.whl" >/dev/null; then
    echo "[evidence] installing $(ls .whl/*.whl | wc -l) carried wheels into $site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" .whl/*.whl
    echo "[evidence] wheels installed after $(($(date +%s) - started_at)) s"
    export PYTHONPATH="$site:$repo:$repo/training${PYTHONPATH:+:$PYTHONPATH}"
  else
    export PYTHONPATH="$repo:$repo/training${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! "$py" -c "import cv2" >/dev/null 2>&1; then
    # LeRobot imports cv2 at module level for GR00T only; OpenCV (60 MB) is not carried.
    mkdir -p "$stand_in/cv2"
    cat >"$stand_in/cv2/__init__.py" <<'EOF'
"""Import-only stand-in for OpenCV, written by scripts/gpu_evidence.sh: any use fails."""

SNAPFLOW_STAND_IN = True


def __getattr__(name):
    raise AttributeError(f"cv2.{name}: OpenCV is not installed here (import-only stand-in)")
EOF
    export PYTHONPATH="$PYTHONPATH:$stand_in"
    echo "[evidence] no OpenCV here: import-only cv2 stand-in from $stand_in"
  fi
  "$py" -m snapflow_ros.bench.gpu_evidence --started-at "$started_at" --out "$out" "${args[@]}"
} 2>&1 | tee "$out/gpu_evidence.log"
