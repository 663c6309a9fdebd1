#!/usr/bin/env bash
# Create (or reuse) the project's Python 3.12 virtual environment and install everything:
# lerobot[smolvla,pi,dataset], ROS 2 Kilted rclpy + messages from PyPI wheels, rosbags, test tools,
# and this package (editable). Fast when already set up: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE || true

find_python312() {
  local candidates=("${PYTHON:-}" python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)"/versions/3.12*/bin/python3.12)
  fi
  candidates+=("$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12)
  for py in "${candidates[@]}"; do
    [ -n "$py" ] || continue
    if "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

stamp_id=$(cat requirements/*.txt setup.py setup.cfg | sha256sum | cut -c1-16)
stamp="$VENV/.snapflow-setup-$stamp_id"
if [ -f "$stamp" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! py=$(find_python312); then
    echo "error: Python 3.12 is required (lerobot 0.6.1 needs >= 3.12; ROS 2 Jazzy/Kilted use 3.12)." >&2
    echo "       Install it (e.g. 'pyenv install 3.12' or your distribution's python3.12)" >&2
    echo "       or point PYTHON=/path/to/python3.12 at one." >&2
    exit 2
  fi
  echo "[setup] creating $VENV with $py"
  "$py" -m venv "$VENV"
fi
# A first install writes about 8 GB (torch with its CUDA libraries is most of it). Say so before
# pip fails halfway with "No space left on device" (an update of a venv that has torch needs less).
need_gb=8
free_kb=$(df -Pk "$VENV" 2>/dev/null | awk 'NR == 2 {print $4}')
if ! compgen -G "$VENV/lib/python3*/site-packages/torch" >/dev/null \
  && [[ "$free_kb" =~ ^[0-9]+$ ]] && [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
  echo "error: $((free_kb / 1024 / 1024)) GB free where $VENV lives; the first install needs about" \
    "$need_gb GB. Free some space or point VENV at another disk." >&2
  exit 2
fi
echo "[setup] installing requirements into $VENV (first run: several minutes, about 8 GB)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements/dev.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
rm -f "$VENV"/.snapflow-setup-*
touch "$stamp"
echo "[setup] done"
