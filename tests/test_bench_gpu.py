"""scripts/bench_gpu.sh: its global budget (the plan, skips for budget), the CPU smoke run of its
stages, and scripts/prepare_gpu_carry.sh's dry run. No timing is asserted: the plan runs on the
script's expected seconds, and the real runs only check what was written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
from bench_gpu_util import set_status  # noqa: E402
from benchlib import read_section, write_section  # noqa: E402

SECTIONS = {
    "dpo_1b": "bench_dpo_gpu_1b",
    "models": "bench_models_gpu",
    "dpo_05b": "bench_dpo_gpu_05b",
    "profile_1b": "profile_dpo_gpu_1b",
    "grpo": "bench_grpo_gpu",
}
ALL = ["dpo_1b", "models", "dpo_05b", "profile_1b", "grpo", "compat_tests"]
PLANNED = re.compile(
    r"^=== (\w+): planned at (\d+) s, limit (\d+) s \(cap (\d+)\), expected (\d+) s"
)
STUB_TORCH_REF = '''"""Stand-in for the shared torch DPO reference where it is not at hand (CI)."""
import json

SHAPES = {
}
print(json.dumps({"impl": "torch+transformers", "median_step_s": 1.0, "tokens_per_s": 64.0,
                  "mfu": 0.0, "peak_mem_gib": None}))
'''


def bench_gpu(tmp_path: Path, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """Run scripts/bench_gpu.sh with $OUT under tmp_path and this interpreter as $PYTHON."""
    full = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    full.update({k: str(v) for k, v in env.items()})
    return subprocess.run(
        ["bash", str(SCRIPTS / "bench_gpu.sh")],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plan(tmp_path: Path, budget: int) -> tuple[dict, dict, str]:
    """({stage: (start, limit, cap, expected)} of the planned stages, {stage: line}, stdout)."""
    done = bench_gpu(tmp_path, BENCH_GPU_PLAN=1, BUDGET_S=budget, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = {m.group(1): m.group(0) for m in re.finditer(r"^=== (\w+): .*$", done.stdout, re.M)}
    planned = {
        m.group(1): tuple(int(g) for g in m.groups()[1:])
        for m in (PLANNED.match(line) for line in lines.values())
        if m
    }
    return planned, lines, done.stdout


def without_status(body: str) -> str:
    """A section's text without its title and its 'Pending:' paragraph."""
    paragraphs = body.split("\n\n")[1:]
    return "\n\n".join(p for p in paragraphs if not p.startswith("Pending:"))


def test_plan_runs_the_issue_stages_first_and_ends_inside_the_budget(tmp_path):
    planned, lines, out = plan(tmp_path, 540)
    assert list(lines) == ALL  # every stage accounted for, in priority order
    assert list(planned)[:3] == ["dpo_1b", "models", "dpo_05b"]
    assert "with torch.compile" in lines["dpo_1b"]
    for stage, (start, limit, cap, _) in planned.items():
        # each stage's hard limit (+5 s for timeout's kill) ends before the budget's reserve
        assert limit <= cap and start + limit + 5 <= 540 - 15, stage
    for stage in set(ALL) - set(planned):
        assert "skipped for budget" in lines[stage]
    end = int(re.search(r"done at (\d+) s of BUDGET_S=540", out).group(1))
    assert end <= 540 - 15


def test_a_smaller_budget_drops_torch_compile_then_later_stages(tmp_path):
    planned, lines, _ = plan(tmp_path, 450)
    assert "torch.compile's row left out" in lines["dpo_1b"]
    assert {"dpo_1b", "models", "dpo_05b"} <= set(planned)
    planned, lines, _ = plan(tmp_path, 300)
    assert list(planned) == ["dpo_1b", "models"]  # priority order, not the cheapest first
    assert "skipped for budget" in lines["dpo_05b"]
    planned, _, _ = plan(tmp_path, 100_000)
    assert list(planned) == ALL


def test_budget_skips_run_nothing_and_leave_pending_lines(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text((ROOT / "docs" / "BENCHMARKS.md").read_text())
    original = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    for _ in range(2):  # a second run replaces the status line, it does not add one
        done = bench_gpu(tmp_path, BENCH_GPU_SMOKE=1, BUDGET_S=0, BENCH_DOC=doc)
        assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary.count("skipped for budget") == len(ALL)
    assert (tmp_path / "out" / "stages.log").read_text() == ""  # no stage ran
    for stage, name in SECTIONS.items():
        body = read_section(doc, name)
        assert body.count("Pending:") == 1, name
        assert f"stage `{stage}` of `scripts/bench_gpu.sh` writes this section" in body
        assert "skipped it for budget (BUDGET_S=0" in body
        # whatever the section held stays below the status line
        assert without_status(body) == without_status(
            read_section(ROOT / "docs/BENCHMARKS.md", name)
        )
    assert (ROOT / "docs" / "BENCHMARKS.md").read_text() == original


def test_an_unknown_stage_is_refused(tmp_path):
    done = bench_gpu(tmp_path, STAGES="dpo_1b nope", BENCH_GPU_PLAN=1, timeout=30)
    assert done.returncode == 2 and "unknown stage 'nope'" in done.stderr


def test_status_line_replaces_an_earlier_one_and_keeps_the_figures(tmp_path):
    doc = tmp_path / "B.md"
    write_section(doc, "s", "## Title\n\n| a |\n|---|\n| 1 |")
    set_status(doc, "s", "unused", "first.")
    set_status(doc, "s", "unused", "second\nreason.")
    assert read_section(doc, "s") == "## Title\n\nPending: second\nreason.\n\n| a |\n|---|\n| 1 |"
    set_status(doc, "new", "New table", "not run.")
    assert read_section(doc, "new") == "## New table: pending\n\nPending: not run."


def test_prepare_gpu_carry_dry_run_names_every_wheel_and_changes_nothing():
    before = sorted(p.name for p in ROOT.iterdir())
    done = subprocess.run(
        ["bash", str(SCRIPTS / "prepare_gpu_carry.sh"), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for pin in ("grain==0.2.18", "array_record==0.8.6", "portpicker==1.6.0", "trl==1.16.0"):
        assert pin in done.stdout
    assert "--python-version 3.12 --implementation cp" in done.stdout
    assert "manylinux_2_28_x86_64" in done.stdout and ".bench/COMMIT" in done.stdout
    assert sorted(p.name for p in ROOT.iterdir()) == before


@pytest.mark.slow
def test_cpu_smoke_runs_the_stages_and_rewrites_their_sections(tmp_path):
    # the stages whose scripts no other test runs end to end (profile_1b: test_bench_scripts;
    # dpo_05b: the same script as dpo_1b); tiny shapes on the CPU
    ref = ROOT.parent / "shared" / "bench" / "torch_dpo_reference.py"
    if not ref.exists():  # CI: the shared reference is not in the repository
        ref = tmp_path / "torch_ref.py"
        ref.write_text(STUB_TORCH_REF)
    stages = ["dpo_1b", "models", "grpo", "compat_tests"]
    original = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    done = bench_gpu(
        tmp_path, timeout=1500, BENCH_GPU_SMOKE=1, STAGES=" ".join(stages), SMOKE_TORCH_REF=ref
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = (tmp_path / "out" / "summary.txt").read_text().splitlines()
    assert [line.split()[0] for line in summary if " ok in " in line] == stages
    doc = tmp_path / "out" / "BENCHMARKS.md"
    for stage in stages[:-1]:
        body = read_section(doc, SECTIONS[stage])
        assert "Pending:" not in body and f"(stage `{stage}`, " in body and "Smoke run" in body
    assert "torch.compile's row left out" in read_section(doc, "bench_dpo_gpu_1b")
    assert "(failed)" not in read_section(doc, "bench_dpo_gpu_1b")  # the torch row ran
    assert re.search(
        r"\| jaxalign GRPO \(cpu, fp32\) \| [0-9.]+ \|", read_section(doc, "bench_grpo_gpu")
    )
    for name in ("bench_dpo_gpu_05b", "profile_dpo_gpu_1b"):  # not selected: untouched
        assert read_section(doc, name) == read_section(ROOT / "docs" / "BENCHMARKS.md", name)
    assert (ROOT / "docs" / "BENCHMARKS.md").read_text() == original


def test_every_gpu_section_names_the_stage_that_writes_it():
    # before a GPU run: "Pending: stage `X` ... writes this section"; after: "Run by ... (stage `X`"
    doc = ROOT / "docs" / "BENCHMARKS.md"
    for stage, name in SECTIONS.items():
        body = read_section(doc, name)
        assert body is not None, name
        pending = f"Pending: stage `{stage}` of `scripts/bench_gpu.sh` writes this section"
        assert pending in body or f"Run by `scripts/bench_gpu.sh` (stage `{stage}`," in body
