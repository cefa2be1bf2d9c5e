"""Config errors as a Snakemake run shows them: one short message naming the config file and key / line."""

from __future__ import annotations

import pytest
import yaml
from workflow_fixtures import TINY, copy_workflow, snakemake

from epeflow.errors import EpeflowError
from epeflow.workflow_config import key_origin, read_yaml_file


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    copy_workflow(work)
    return work


def _short_and_clean(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output, output
    assert len(output.strip().splitlines()) <= 4, output


def test_a_bad_key_in_an_overlay_is_one_message_naming_the_file_and_key(work):
    bad = {**TINY, "experiments": {"demo": {**TINY["experiments"]["demo"], "knn": {"k": 0}}}}
    (work / "bad.yaml").write_text(yaml.safe_dump(bad))
    run = snakemake(work, "-n", "results/demo/metrics.json", "--configfile", "bad.yaml")
    assert run.returncode == 1
    assert ("epeflow: error: invalid configuration (config/config.yaml, bad.yaml):\n"
            "  config key `experiments.demo.knn.k` (in bad.yaml): 0 is less than the minimum of 1") in run.stderr
    _short_and_clean(run.stderr)


def test_invalid_yaml_in_the_workflow_config_names_the_file_and_line(work, tmp_path):
    broken = tmp_path / "wf"
    copy_workflow(broken)
    text = (broken / "config" / "config.yaml").read_text().splitlines()
    text[3] = "\tbad: 1"  # line 4: a tab YAML does not allow
    (broken / "config" / "config.yaml").write_text("\n".join(text) + "\n")
    run = snakemake(broken, "-n")
    assert run.returncode == 1
    assert "epeflow: error: config file config/config.yaml, line 4, column 1: not valid YAML" in run.stderr, run.stderr
    _short_and_clean(run.stderr)


def test_read_yaml_file_and_key_origin(tmp_path):
    (tmp_path / "a.yaml").write_text("experiments:\n  demo: {knn: {k: 3}}\n")
    (tmp_path / "b.yaml").write_text("experiments:\n  demo:\n    knn: {k: 0}\n")
    (tmp_path / "tab.yaml").write_text("a: b\n\tc: d\n")
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    assert key_origin("experiments.demo.knn.k", files) == str(tmp_path / "b.yaml")
    assert key_origin("experiments.demo.knn.index", files) == str(tmp_path / "b.yaml")  # closest parent
    assert key_origin("datasets.x", files) is None
    with pytest.raises(EpeflowError, match=r"config file .*tab.yaml, line 2, column 1: not valid YAML"):
        read_yaml_file(tmp_path / "tab.yaml")


@pytest.mark.parametrize(("target", "message"), [
    ("results/s2rr/model.pt", "no experiment named 's2rr' in the config (results/<experiment>/...); experiments "
                              "defined: demo, pfd2cs"),
    ("results/datasets/cityscap/manifest.parquet", "no dataset named 'cityscap' in the config "
                                                   "(results/datasets/<dataset>/...); did you mean 'cityscapes'?"),
])
def test_a_target_typo_lists_the_known_names_instead_of_a_key_error(work, target, message):
    run = snakemake(work, "-n", target)
    assert run.returncode == 1
    assert f"epeflow: error: {message}" in run.stderr, run.stderr
    assert "KeyError" not in run.stderr + run.stdout
    _short_and_clean(run.stderr)
