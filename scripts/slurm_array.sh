#!/usr/bin/env bash
# Run an experiment as a SLURM job array: one task per shard, all on a shared filesystem.
#
#   sbatch --array=0-7 scripts/slurm_array.sh configs/experiments/disagreement.yaml --mode gpu
#
# Each task runs `jaxalign experiment run CONFIG --shard auto ...`: its shard index and count
# come from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, cells are split by id (every n-th),
# and the shared stages (survey, preferences) are computed once under lock files in
# ROOT/_shared. A task that dies leaves its finished stages behind: resubmit the array (or just
# that task, e.g. --array=3) and it resumes. When every task is done, build the report once:
#
#   jaxalign experiment report CONFIG --mode gpu --root "$JAXALIGN_ROOT"
#
#SBATCH --job-name=jaxalign-exp
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: sbatch --array=0-N scripts/slurm_array.sh CONFIG [--mode MODE] [key=value ...]" >&2
    exit 2
fi
ROOT="${JAXALIGN_ROOT:-runs/experiments}"
JAXALIGN="${JAXALIGN:-.venv/bin/jaxalign}"
mkdir -p logs
# Cells never call jax.distributed: each task is its own single-process job.
exec "$JAXALIGN" experiment run "$1" --shard auto --root "$ROOT" "${@:2}"
