"""A tensor axis that cannot split the heads is refused by real training as by the dry run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from jaxalign.cli import main
from jaxalign.errors import ConfigError
from jaxalign.train.memory import check_heads

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "dpo": [str(ROOT / "configs/train/tiny_cpu.yaml"), "data.prefs=unused.jsonl"],
    "grpo": [str(ROOT / "configs/train/tiny_grpo.yaml")],
}
# The tiny models have 4 heads and 2 KV heads; conftest gives 8 simulated devices.
MESHES = {
    "kv_heads": ["train.mesh_tensor=4", "train.mesh_fsdp=2"],  # 4 heads split, 2 KV heads not
    "heads": ["train.mesh_tensor=8", "train.mesh_fsdp=1"],  # neither splits
}


def _error(capsys, algorithm: str, mesh: list[str], run: Path, *extra: str) -> str:
    """Run `jaxalign train` and return its one-line error (it must exit 1)."""
    config, *rest = CONFIGS[algorithm]
    args = ["train", "--config", config, *extra, *rest, *mesh, f"train.run_dir={run}"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


@pytest.mark.parametrize("case", sorted(MESHES))
@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_training_refuses_a_tensor_axis_that_does_not_split_the_heads(
    capsys, tmp_path, algorithm, case
):
    tensor = MESHES[case][0].split("=")[1]
    real = _error(capsys, algorithm, MESHES[case], tmp_path / "run")
    assert real.startswith(f"jaxalign: error: train.mesh_tensor={tensor}: "), real
    assert f"4 heads / 2 KV heads are not divisible by {tensor}" in real
    assert not (tmp_path / "run").exists()  # refused before anything was written
    planned = _error(capsys, algorithm, MESHES[case], tmp_path / "plan", "--dry-run")
    assert planned == real  # one check, one message, for both paths


def test_check_heads_allows_an_axis_that_splits_both():
    spec = SimpleNamespace(path="", random=SimpleNamespace(num_heads=8, num_kv_heads=2))
    for tensor in (1, 2):
        check_heads(spec, tensor)
    with pytest.raises(ConfigError, match="8 heads / 2 KV heads are not divisible by 4"):
        check_heads(spec, 4)
