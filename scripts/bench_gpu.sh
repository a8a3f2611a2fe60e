#!/usr/bin/env bash
# GPU benchmarks (DPO step, model layer, GRPO step) plus a version-compatibility test run, in one call
# on the lent H100/H200 (device tool). Stages run most important first, each under its own
# time limit; a failed stage is reported and the next one still runs.
#
# Prepare here (once; both folders are git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl grain==0.2.18 array_record==0.8.6 portpicker==1.6.0
#   mkdir -p .bench && cp ../shared/bench/torch_dpo_reference.py ../shared/bench/torch_generate_reference.py .bench/
#   For the GRPO stage: SmolLM2's tokenizer (from `jaxalign model export --out /tmp/bench_grpo_hf`)
#   mkdir -p .bench/smollm2-tokenizer && cp /tmp/bench_grpo_hf/{tokenizer.json,tokenizer_config.json,chat_template.jinja} .bench/smollm2-tokenizer/
#   and, for its TRL row, trl==1.16.0 with accelerate and datasets (and their wheels) in .whl
#   where they fit the carry limit; without TRL the stage measures the jaxalign row only.
#   (../shared does not travel to the device machine; the bundled SmolLM2 GGUF is too large to
#   carry, so the model-layer bench uses the SmolLM2 shape with random weights there.)
# Run there with carry [".whl", ".bench"]:  bash scripts/bench_gpu.sh
# STAGES="models compat_tests" bash scripts/bench_gpu.sh runs only the named stages (default: all).
# Writes the bench_dpo_gpu_1b, profile_dpo_gpu_1b, bench_dpo_gpu_05b, bench_models_gpu and bench_grpo_gpu sections of
# docs/BENCHMARKS.md and copies that file and the logs to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-/tmp/bench_gpu_out}"
mkdir -p "$OUTDIR"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PWD}${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv || true
python3 -c "import jax, flax, optax, orbax.checkpoint as o, torch, transformers; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
STAGES="${STAGES:-dpo_1b profile_1b dpo_05b models grpo compat_tests}"
stage() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  case " $STAGES " in *" $name "*) ;; *) echo "=== $name: skipped"; return 0 ;; esac
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0))s"
  grep -v -i "warn" "$OUTDIR/$name.log" | tail -n 14
}
# 1. DPO step, llama-1b shape, 4 pairs x 1024, bf16: torch eager and torch.compile, then
#    jaxalign pairs rows (cuDNN causal flash) and shared-prompt rows (cuDNN with a mask),
#    in-step reference, and the cached reference.
stage dpo_1b 300 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 python3 scripts/bench_dpo.py \
  --torch-ref .bench/torch_dpo_reference.py --shape llama-1b --pairs 4 --seq 1024 --prompt 256 \
  --dtype bf16 --steps 5 --torch-compile --attention cudnn --layouts pairs,shared_prompt \
  --peak-tflops 989 --section bench_dpo_gpu_1b --write docs/BENCHMARKS.md
# 1b. Where that step's time goes (matmul, attention, log-softmax, optimizer), same shape.
stage profile_1b 150 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 python3 scripts/profile_dpo.py \
  --shape llama-1b --pairs 4 --seq 1024 --prompt 256 --dtype bf16 --attention cudnn \
  --layout pairs --repeats 3 --section profile_dpo_gpu_1b --write docs/BENCHMARKS.md
# 2. The 152k-vocabulary 0.5B shape at 8 pairs x 1024 must fit.
stage dpo_05b 120 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 python3 scripts/bench_dpo.py \
  --torch-ref .bench/torch_dpo_reference.py --shape qwen2.5-0.5b-like --pairs 8 --seq 1024 \
  --prompt 256 --dtype bf16 --steps 3 --attention cudnn --layouts pairs --references model \
  --peak-tflops 989 --section bench_dpo_gpu_05b --write docs/BENCHMARKS.md
# 3. Model layer beside transformers (SmolLM2 shape, random weights): forward, fwd+bwd, decode.
stage models "${MODELS_LIMIT:-100}" env XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 python3 scripts/bench_models.py --random \
  --dtype bf16 --batch 8 --seq 1024 --decode-batches 1,64 --new-tokens 32 --repeats 3 \
  --section bench_models_gpu --write docs/BENCHMARKS.md
# 4. GRPO step beside TRL's GRPOTrainer (transformers generate), random SmolLM2-shaped weights
#    written once by torch, SmolLM2's tokenizer: rollout / reward / learner seconds, tokens/s.
stage grpo 240 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 python3 scripts/bench_grpo.py \
  --trl-python python3 --random-like .bench/smollm2-tokenizer --hf-dir /tmp/bench_grpo_hf \
  --prompts 8 --generations 8 --new-tokens 128 --target 64 --dtype bf16 --steps 3 --warmup 1 \
  --section bench_grpo_gpu --write docs/BENCHMARKS.md
# 5. The image's versions (jax/flax/optax/orbax/transformers) against the CPU test suite's core.
stage compat_tests 150 env JAX_PLATFORMS=cpu python3 -m pytest -q -p no:cacheprovider -n 8 \
  -m "not slow" tests/test_losses.py tests/test_train.py tests/test_run_dir.py tests/test_runner.py
cp docs/BENCHMARKS.md "$OUTDIR/"
