#!/usr/bin/env bash
# The closed-loop LIBERO proof from scratch (docs/libero.md, "Closed-loop proof"):
#   demos    scripted demonstrations of one task (LeRobotDataset, 64 px, fresh placements)
#   teacher  a tiny SmolVLA teacher trained by LeRobot's own lerobot-train on them
#   distill  SnapFlow self-distillation of that teacher with the project's defaults
#   ship     copy teacher + student into snapflow_ros/models/<suite>_t<task> (+ manifest.json)
#   eval     libero_eval through the policy node, lock-step: teacher 10/2/1 steps, SnapFlow 1/2
#
#   bash scripts/libero_proof.sh [STAGE...]        (default: all stages, in order)
#
# Every stage reuses what an earlier run left in $WORK (the demonstrations resume; delete a
# stage's folder to redo it). Settings (environment variables, defaults in brackets):
#   SUITE [libero_object]  TASK [0] (a task with a scripted expert: libero_object 0, the can
#   into the basket; libero_spatial 0, the bowl onto the plate, pinched at either side)
#   WORK [artifacts/libero_proof]  EPISODES [150]  TEACHER_STEPS [3000]  DISTILL_STEPS [1000]
#   EVAL_EPISODES [50] (benchmark initial states 0..N-1)  VIDEO [] (agentview: a video per
#   episode; it needs every frame rendered, so the evaluation is several times slower)  SEED [0]
#   EVAL_JOBS [2] (2: the five configurations as two runs side by side, merged by
#   libero_eval_merge; 1: one run)  EVAL_DOMAIN [96] (ROS domains EVAL_DOMAIN, EVAL_DOMAIN+1;
#   keep both in the portable range 52..101)
#   EVAL_MAX_STEPS [0] (0: the suite's step limit; a small number checks the stage quickly)
#   DEMO_WORKERS [2] (simulator processes recording demonstrations; the dataset is the same)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"
SUITE="${SUITE:-libero_object}"
TASK="${TASK:-0}"
WORK="${WORK:-artifacts/libero_proof}"
EPISODES="${EPISODES:-150}"
TEACHER_STEPS="${TEACHER_STEPS:-3000}"
DISTILL_STEPS="${DISTILL_STEPS:-1000}"
EVAL_EPISODES="${EVAL_EPISODES:-50}"
VIDEO="${VIDEO-}"
SEED="${SEED:-0}"
EVAL_JOBS="${EVAL_JOBS:-2}"
EVAL_DOMAIN="${EVAL_DOMAIN:-96}"
EVAL_MAX_STEPS="${EVAL_MAX_STEPS:-0}"
DEMO_WORKERS="${DEMO_WORKERS:-2}"
for var in TASK EVAL_EPISODES EVAL_DOMAIN EVAL_MAX_STEPS; do
  [[ "${!var}" =~ ^[0-9]+$ ]] || { echo "$var must be a whole number, got '${!var}'" >&2; exit 2; }
done
[[ "$DEMO_WORKERS" =~ ^[1-9][0-9]*$ ]] || {
  echo "DEMO_WORKERS must be a whole number >= 1, got '$DEMO_WORKERS'" >&2
  exit 2
}
[[ "$EVAL_JOBS" =~ ^[12]$ ]] || { echo "EVAL_JOBS must be 1 or 2, got '$EVAL_JOBS'" >&2; exit 2; }
DATA="$WORK/demos"
TEACHER="$WORK/teacher/teacher"
STUDENT="$WORK/snapflow/model"
# Two CPU cores: one thread per process, data decoding in two loader processes.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

stage_demos() {
  python -m snapflow_ros.training_data.demonstrations "$DATA" --suite "$SUITE" --task "$TASK" \
    --episodes "$EPISODES" --image-size 64 --seed "$SEED" --repo-id "local/${SUITE}_t${TASK}_demos" \
    --workers "$DEMO_WORKERS"
  # the demonstrations must start where the benchmark starts (arm pose, objects)
  python -m snapflow_ros.sim.coverage "$DATA" --out "$WORK/coverage.json"
}

stage_teacher() {
  [ -f "$TEACHER/model.safetensors" ] && { echo "teacher: $TEACHER exists"; return; }
  rm -rf "$WORK/teacher"
  python -m snapflow_training.teacher --dataset "$DATA" --output "$WORK/teacher" \
    --steps "$TEACHER_STEPS" --batch-size 32 --lr 1e-3 --num-workers 2 --seed 1000 --quiet
}

stage_distill() {
  [ -f "$STUDENT/model.safetensors" ] && { echo "distill: $STUDENT exists"; return; }
  distill --policy "$TEACHER" --dataset "$DATA" --output "$WORK/snapflow" --overwrite \
    --steps "$DISTILL_STEPS" --batch-size 16 --lr 2e-4 --seed "$SEED" --num-workers 2 \
    --eval-episodes 10 --eval-interval 0 --save-interval 500 --fidelity-frames 32 \
    --fidelity-draws 16 --latency-repeats 0 --device cpu --no-progress
}

stage_ship() {
  python - "$WORK" "$SEED" "$EPISODES" "$TEACHER_STEPS" "$DISTILL_STEPS" "$SUITE" "$TASK" <<'EOF'
import json, sys
work, seed, episodes, teacher_steps, distill_steps, suite, task = sys.argv[1:]
recipe = json.load(open(f"{work}/teacher/teacher.json"))
run = json.load(open(f"{work}/snapflow/run.json"))
json.dump({
    "task": f"{suite} task {task}",
    "regenerate": f"SUITE={suite} TASK={task} bash scripts/libero_proof.sh",
    "settings": {"seed": int(seed), "demo_episodes": int(episodes),
                 "teacher_steps": int(teacher_steps), "distill_steps": int(distill_steps)},
    "teacher_command": recipe["command"][1:], "teacher_seconds": recipe.get("seconds"),
    "distill_run": run,
}, open(f"{work}/provenance.json", "w"), indent=2, default=str)
EOF
  local metrics=()
  [ -f "$WORK/eval/results.json" ] && metrics=(--metrics "$WORK/eval/summary.json")
  python -m snapflow_training.ship_models --name "${SUITE}_t${TASK}" --teacher "$TEACHER" \
    --student "$STUDENT" --dataset "$DATA" --provenance "$WORK/provenance.json" "${metrics[@]}"
}

stage_eval() {
  local common=(--suites "$SUITE" --tasks "$TASK" --episodes "$EVAL_EPISODES" --image-size 64
    --max-steps "$EVAL_MAX_STEPS" --policy-arg torch_threads:=1)
  [ -n "$VIDEO" ] && common+=(--video "$VIDEO")
  # teacher10 first: the reports pair every configuration with it on the same initial states.
  local group_a=(--config "teacher10=$TEACHER,10" --config "teacher1=$TEACHER,1"
    --config "snapflow1=$STUDENT,1")
  local group_b=(--config "teacher2=$TEACHER,2" --config "snapflow2=$STUDENT,2")
  if [ "$EVAL_JOBS" -eq 1 ]; then
    libero_eval "${common[@]}" "${group_a[@]}" "${group_b[@]}" --out "$WORK/eval"
  else
    # Two lock-step runs side by side, each on its own ROS domain (one core each), then one
    # report. Lines of both runs interleave; each starts with its configuration's name.
    local rc=0 pid_a pid_b
    libero_eval "${common[@]}" "${group_a[@]}" --domain-id "$EVAL_DOMAIN" --out "$WORK/eval_a" &
    pid_a=$!
    libero_eval "${common[@]}" "${group_b[@]}" --domain-id $((EVAL_DOMAIN + 1)) \
      --out "$WORK/eval_b" &
    pid_b=$!
    wait "$pid_a" || rc=1
    wait "$pid_b" || rc=1
    [ "$rc" -eq 0 ] || { echo "eval: a libero_eval run failed (see above)" >&2; return 1; }
    rm -rf "$WORK/eval"
    libero_eval_merge "$WORK/eval_a" "$WORK/eval_b" --out "$WORK/eval" \
      --configs teacher10,teacher2,teacher1,snapflow1,snapflow2
  fi
  python -c "import json,sys; d=json.load(open(sys.argv[1])); json.dump(d['summary'], open(sys.argv[2],'w'), indent=1)" \
    "$WORK/eval/results.json" "$WORK/eval/summary.json"
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(demos teacher distill eval ship)
for stage in "${stages[@]}"; do
  case "$stage" in
    demos|teacher|distill|ship|eval) echo "== $stage"; "stage_$stage" ;;
    *) echo "unknown stage '$stage' (demos teacher distill eval ship)" >&2; exit 2 ;;
  esac
done
