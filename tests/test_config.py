"""Config loading: every shipped file parses; bad keys and values are precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxalign.config import Config, config_hash, dump, load_config
from jaxalign.config.core import from_dict, read_yaml
from jaxalign.errors import ConfigError

# Experiment files are not configs but grids of them (tests/test_experiment*.py check them).
CONFIGS = sorted(
    p
    for p in (Path(__file__).parent.parent / "configs").rglob("*.yaml")
    if p.parent.name != "experiments"
)


def test_configs_exist():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_config_file_parses(path):
    config = load_config(path)
    assert isinstance(config, Config)


def test_default_yaml_matches_dataclass_defaults():
    path = Path(__file__).parent.parent / "configs" / "default.yaml"
    assert load_config(path) == Config()


def test_unknown_key_names_key_file_and_allowed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("prefs:\n  scael: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "prefs.scael" in message and "scale" in message


def test_out_of_choices_lists_allowed_values(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("prefs:\n  scale: 4\n")
    with pytest.raises(
        ConfigError, match=r"prefs\.scale: 4 is not allowed; expected one of 5, 3, 2"
    ):
        load_config(path)


def test_wrong_type_and_range():
    with pytest.raises(ConfigError, match=r"override 'simulate.participants=many'.*not int"):
        load_config(None, ["simulate.participants=many"])
    with pytest.raises(
        ConfigError, match=r"analysis\.bootstrap: 5 is out of range; expected a value >= 100"
    ):
        load_config(None, ["analysis.bootstrap=5"])
    with pytest.raises(ConfigError, match="not a boolean"):
        load_config(None, ["prefs.keep_ties=maybe"])


def test_bad_dimension_in_list():
    with pytest.raises(ConfigError, match=r"prefs\.dimensions.*'kindness' is not allowed"):
        load_config(None, ["prefs.dimensions=[toxicity,kindness]"])


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(None, ["prefs.split.train=0.9"])
    with pytest.raises(ConfigError, match="weights"):
        load_config(None, ["prefs.weights={helpfulness: 2}"])
    # Group expressions are parsed where they are used (tests/test_prefs.py), not by config/.
    assert load_config(None, ["prefs.groups=[colour=blue]"]).prefs.groups == ("colour=blue",)


def test_overrides_apply_in_order_and_coerce():
    config = load_config(None, ["prefs.scale=3", "prefs.scale=2", "analysis.confidence=0.9"])
    assert config.prefs.scale == 2 and config.analysis.confidence == 0.9
    assert load_config(None, ["simulate.leniency_sd=0"]).simulate.leniency_sd == 0.0


def test_malformed_override_and_yaml(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["prefs.scale"])
    path = tmp_path / "broken.yaml"
    path.write_text("prefs: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*invalid YAML"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_hash_is_stable_and_sensitive():
    a, b = load_config(None), load_config(None, ["prefs.scale=5"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config(None, ["prefs.scale=3"]))
    assert len(config_hash(a)) == 12


def test_dump_round_trips(tmp_path):
    config = load_config(None, ["prefs.dimensions=[toxicity,helpfulness]", "prefs.combine=pareto"])
    path = tmp_path / "dumped.yaml"
    path.write_text(dump(config))
    assert load_config(path) == config
    assert from_dict(Config, {}) == Config()


def test_dpo_run_id_hashes_its_own_root_only():
    import dataclasses

    from jaxalign.config import DPORun, project
    from jaxalign.config.schema import Config as Root
    from jaxalign.train.run_dir import run_id as run_id_of

    def run_id(cfg):
        return run_id_of(project(cfg, DPORun))

    base = load_config(None)
    assert run_id(base) == run_id(load_config(None, ["analysis.bootstrap=500"]))
    assert run_id(base) == run_id(load_config(None, ["simulate.participants=10"]))
    assert run_id(base) == run_id(load_config(None, ["prefs.scale=3"]))
    assert run_id(base) == run_id(load_config(None, ["eval.evaluators=[generations]"]))
    assert run_id(base) != run_id(load_config(None, ["dpo.beta=0.2"]))

    @dataclasses.dataclass(frozen=True)
    class Future(Root):  # a root that gained another algorithm's section
        grpo: dict = dataclasses.field(default_factory=lambda: {"group_size": 8})

    assert run_id(Future()) == run_id(base)
