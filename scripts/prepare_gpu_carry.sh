#!/usr/bin/env bash
# Build the two git-ignored folders scripts/bench_gpu.sh needs on the device machine, then check
# that what travels fits the device tool's 64 MiB. Run it last, right before the device call (it
# records the commit, since .git does not travel). The device tool sends the checkout the session
# started in: run this there (a helper's worktree is not what travels).
#
#   .whl/   cp312 manylinux wheels the GPU image (Python 3.12) lacks, replaced as a whole (one
#           version of each): grain + array_record + portpicker (the trainer's data path, for
#           compat_tests) and trl + datasets + dill + multiprocess (the grpo stage's TRL row;
#           accelerate, pyarrow, xxhash and the rest are in the image). ~6.3 MB in all.
#   .bench/ torch_dpo_reference.py (from $BENCH_REF_DIR, default ../shared/bench), SmolLM2's
#           tokenizer (smollm2-tokenizer/: from the bundled GGUF, ~3.5 MB), COMMIT.
#
# Usage: bash scripts/prepare_gpu_carry.sh [--dry-run]   (--dry-run: print the steps, change nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
REF_DIR=${BENCH_REF_DIR:-../shared/bench}
WHEELS=(grain==0.2.18 array_record==0.8.6 portpicker==1.6.0
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
LIMIT=$((64 * 1024 * 1024))

step() {  # print a step; run it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" -d "$tmp/whl" "${WHEELS[@]}"
step rm -rf .whl
step mv "$tmp/whl" .whl
step mkdir -p .bench
step cp -f "$REF_DIR/torch_dpo_reference.py" .bench/
if [ -f .bench/smollm2-tokenizer/tokenizer.json ]; then
  echo "  .bench/smollm2-tokenizer already there"
else
  step "$PY" -c "from jaxalign.models.loading import load_tokenizer, resolve
load_tokenizer(resolve('smollm2')).save_pretrained('.bench/smollm2-tokenizer')"
fi
commit=$(git describe --always --dirty)
echo "+ echo $commit > .bench/COMMIT"
[ "$DRY" = 1 ] || echo "$commit" >.bench/COMMIT
[ "$DRY" = 1 ] && exit 0

tree=$(git ls-files -co --exclude-standard -z | xargs -0 -r du -cb 2>/dev/null | tail -n 1 | cut -f1)
carried=$(du -sb .whl .bench | awk '{s += $1} END {print s}')
total=$((tree + carried))
echo "travels: working tree $((tree / 1024)) KiB + .whl and .bench $((carried / 1024)) KiB" \
  "= $((total / 1024)) KiB of the device tool's $((LIMIT / 1024)) KiB"
ls -l .whl
if ((total > LIMIT)); then
  echo "over the device tool's 64 MiB: drop the TRL wheels (the grpo stage then measures jaxalign only)" >&2
  exit 1
fi
echo 'run(command="bash scripts/bench_gpu.sh", carry=[".whl", ".bench"], timeout_s=600)'
