from __future__ import annotations

import copy

import pytest
import yaml

from epeflow.config import load_config, merge, validate_config
from epeflow.errors import EpeflowError


@pytest.fixture
def base_config(repo) -> dict:
    with open(repo / "config" / "config.yaml") as f:
        return yaml.safe_load(f)


def test_shipped_config_validates_and_fills_defaults(base_config):
    cfg = validate_config(base_config)
    pfd2cs = cfg["experiments"]["pfd2cs"]
    assert pfd2cs["knn"]["nprobe"] == 16  # default filled inside a nested section
    assert pfd2cs["train"]["batch_size"] == 1
    assert cfg["datasets"]["cityscapes"]["crops"]["size"] == 196
    assert cfg["datasets"]["cityscapes"]["split"]["test"] == 0.1
    assert cfg["weights"]["vgg16"]["path"] is None
    # the input is not modified
    assert "nprobe" not in base_config["experiments"]["pfd2cs"]["knn"]


def test_unknown_key_is_named_with_allowed_keys(base_config):
    base_config["experiments"]["demo"]["knn"]["kk"] = 3
    with pytest.raises(EpeflowError, match=r"experiments\.demo\.knn.*'kk'.*allowed: .*chunk_size"):
        validate_config(base_config)


def test_wrong_type_and_range_are_named(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["experiments"]["demo"]["knn"]["k"] = 0
    with pytest.raises(EpeflowError, match=r"experiments\.demo\.knn\.k"):
        validate_config(cfg)
    cfg = copy.deepcopy(base_config)
    cfg["datasets"]["demo_real"]["role"] = "photo"
    with pytest.raises(EpeflowError, match=r"datasets\.demo_real\.role.*synthetic, real"):
        validate_config(cfg)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["experiments"]["demo"].update(target="nope"), r"experiments\.demo\.target.*no dataset named"),
        (lambda c: c["experiments"]["demo"].update(target="demo_synth"), r"role 'synthetic', expected 'real'"),
        (lambda c: c["datasets"]["demo_real"].update(images="x"), r"datasets\.demo_real.*exactly one of"),
        (lambda c: c["datasets"]["demo_real"].update(gbuffers="fake"), r"only synthetic datasets"),
        (lambda c: c["datasets"]["pfd"]["crops"].update(size=100) or c["datasets"]["pfd"].setdefault("crops", {}),
         r"datasets\.pfd\.crops\.size.*receptive"),
        (lambda c: c["datasets"]["demo_real"]["crops"].update(size=64), r"different crop sizes"),
        (lambda c: c.update(default_experiment="zzz"), r"default_experiment"),
        (lambda c: c["experiments"]["demo"]["train"].update(crop_size=128), r"demo\.train\.crop_size.*larger"),
        (lambda c: c["datasets"]["cityscapes"].update(labels="gt"), r"datasets\.cityscapes\.labels.*gt_label_dir"),
    ],
)
def test_cross_checks_name_the_key(base_config, edit, message):
    base_config["datasets"]["pfd"].setdefault("crops", {})
    edit(base_config)
    with pytest.raises(EpeflowError, match=message):
        validate_config(base_config)


def test_overlay_adds_an_experiment(tmp_path, repo):
    overlay = tmp_path / "exp.yaml"
    overlay.write_text(
        "experiments:\n  small:\n    source: demo_synth\n    target: demo_real\n    knn: {k: 3}\n"
        "  demo:\n    knn: {k: 7}\n"
    )
    cfg = load_config([repo / "config" / "config.yaml", overlay])
    assert cfg["experiments"]["small"]["knn"]["k"] == 3
    assert cfg["experiments"]["demo"]["knn"]["k"] == 7
    # keys of the base experiment not in the overlay survive (recursive merge, like Snakemake)
    base = load_config([repo / "config" / "config.yaml"])
    assert cfg["experiments"]["demo"]["train"] == base["experiments"]["demo"]["train"]


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(EpeflowError, match="does not exist"):
        load_config([tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(EpeflowError, match="bad.yaml is not valid YAML"):
        load_config([bad])


def test_merge_is_recursive_and_pure():
    a = {"x": {"y": 1, "z": 2}, "w": 1}
    b = {"x": {"y": 3}}
    assert merge(a, b) == {"x": {"y": 3, "z": 2}, "w": 1}
    assert a == {"x": {"y": 1, "z": 2}, "w": 1}


def test_snakemake_validate_accepts_the_same_schema(base_config, repo):
    from snakemake.utils import validate

    validate(copy.deepcopy(base_config), str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    bad = copy.deepcopy(base_config)
    bad["experiments"]["demo"]["max_dist"] = "far"
    with pytest.raises(Exception, match="max_dist|far"):
        validate(bad, str(repo / "workflow" / "schemas" / "config.schema.yaml"))


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"val": 0.6, "test": 0.7}, r"`datasets\.demo_real\.split`: val \+ test = 0\.6 \+ 0\.7 = 1\.3 leaves no"),
        ({"val": 0.5, "test": 0.5}, r"`datasets\.demo_real\.split`: val \+ test .* = 1 leaves no frames"),
        ({"test": 1.0}, r"`datasets\.demo_real\.split\.test`: 1\.0 is greater than or equal to the maximum of 1"),
        ({"val": -0.1}, r"`datasets\.demo_real\.split\.val`: -0\.1 is less than the minimum of 0"),
    ],
)
def test_split_fractions_are_checked_naming_the_key(base_config, split, message):
    from epeflow.config import validate_dataset

    base_config["datasets"]["demo_real"]["split"] = split
    with pytest.raises(EpeflowError, match=message):
        validate_config(base_config)
    spec = {"role": "real", "images": "x", "split": split}  # what the manifest rule passes with --spec
    with pytest.raises(EpeflowError, match=message):
        validate_dataset(spec, "demo_real", stage="manifest")
