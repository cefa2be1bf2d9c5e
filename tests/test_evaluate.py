from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import make_experiment, scene, write_enhanced

from epeflow.cli import main
from epeflow.common.lpips import LPIPS_CHANNELS, build_lpips, lin_key
from epeflow.common.vgg16 import VGG16
from epeflow.config import validate_section
from epeflow.errors import EpeflowError
from epeflow.metrics.evaluate import lpips_per_frame, run_evaluate
from epeflow.metrics.frames import load_rgb
from epeflow.provenance import RANDOM_WEIGHTS_WARNING


def _settings(**overrides):
    return validate_section("evaluate", {"kid_subsets": 10, "kid_subset_size": 4, "skvd_size": [48, 64],
                                         "ckvd_min_pairs": 2, **overrides}, ("test",))


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Pretrained-looking weight files (random values in the official layouts)."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    vgg = VGG16()
    torch.save({"features." + k: v for k, v in vgg.features.state_dict().items()}, root / "vgg16.pth")
    torch.save({lin_key(i): torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}, root / "lpips.pth")
    return {"vgg16": {"path": str(root / "vgg16.pth")}, "lpips": {"path": str(root / "lpips.pth")}}


def test_random_run_measures_and_is_marked(tmp_path, hub_dir):
    exp = make_experiment(tmp_path, random=False)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(), {}, True, "demo", threads=2,
                       labels=exp.labels)
    assert doc["experiment"] == "demo"
    assert doc["frames"] == {"enhanced": 4, "real": 12}
    m = doc["metrics"]
    assert set(m) == {"kid_vgg", "fid_vgg", "lpips", "swd", "swd_lab", "skvd", "ckvd", "tof", "tlp",
                      "semantic_consistency"}
    # the test frames 1, 3, 5, 7 are no consecutive pairs: the temporal metrics say so instead of a number
    assert "no two consecutive enhanced frames" in m["tof"]["skipped"] and "skipped" in m["tlp"]
    # enhanced frames have the real look, their sources do not: the enhanced side must be closer
    assert m["kid_vgg"]["enhanced"]["mean"] < m["kid_vgg"]["identity"]["mean"]
    assert m["kid_vgg"]["enhanced"]["subset_size"] == 4 and m["kid_vgg"]["enhanced"]["seed"] == 2020
    assert m["fid_vgg"]["enhanced"]["value"] < m["fid_vgg"]["identity"]["value"]
    assert m["fid_vgg"]["enhanced"]["n_x"] == 4 and m["fid_vgg"]["enhanced"]["n_y"] == 12
    assert m["lpips"]["enhanced"]["n"] == 4 and m["lpips"]["enhanced"]["mean"] > 0
    # the weight-free SWDs see the same: colours and patch statistics of the enhanced frames are the real ones'
    assert m["swd_lab"]["enhanced"] < m["swd_lab"]["identity"]
    assert m["swd"]["enhanced"]["mean"] < m["swd"]["identity"]["mean"]
    assert len(m["swd"]["enhanced"]["per_level"]) == len(m["swd"]["identity"]["per_level"]) >= 2
    assert m["swd"]["descriptors_per_image"] == 128  # Karras et al.'s default, recorded with the numbers
    # the colour-transfer baseline takes the real frames' Lab statistics: its colours are closer than untouched ones
    assert m["swd_lab"]["colour_transfer"] < 0.5 * m["swd_lab"]["identity"]
    assert m["lpips"]["identity"]["mean"] == pytest.approx(0.0, abs=1e-6) and m["lpips"]["colour_transfer"]["mean"] > 0
    stats = doc["baselines"]["colour_transfer"]
    assert len(stats["target_lab_mean"]) == 3 and len(stats["source_lab_std"]) == 3
    assert list(doc["compared"]) == ["enhanced", "identity", "colour_transfer"]
    for name in ("kid_vgg", "fid_vgg", "lpips", "swd", "swd_lab", "skvd", "ckvd"):
        assert {"enhanced", "identity", "colour_transfer"} <= set(m[name]), name
    # sKVD: 20-px crops (1/8 of 48x64) paired by their street layouts; the real-looking enhanced crops are closer
    skvd = m["skvd"]
    assert skvd["crop_side"] == 20 and skvd["crops"] == {"enhanced": 4, "real": 12} and skvd["pairs"] >= 2
    assert skvd["enhanced"]["pairs"] == skvd["identity"]["pairs"] == skvd["colour_transfer"]["pairs"] == skvd["pairs"]
    assert skvd["enhanced"]["value"] < skvd["identity"]["value"]
    assert set(m["ckvd"]["enhanced"]["per_class"]) <= {"sky", "road", "car"}
    assert doc["random_weights"] is True and doc["warning"] == RANDOM_WEIGHTS_WARNING
    assert sorted(doc["provenance"]["random_models"]) == ["lpips", "vgg16"]
    # every number says where it comes from
    for name, metric in m.items():
        if name in ("tof", "tlp", "semantic_consistency"):
            continue
        p = metric["provenance"]
        real = {} if name == "lpips" else {"real": 12}  # LPIPS compares each frame with its rendered source
        assert p["samples"] == {"enhanced": 4, "identity": 4, "colour_transfer": 4, **real}, name
        assert "input" in p and p["statistics_dtype"] == "float64", name
    assert m["kid_vgg"]["provenance"]["features"]["weights"] == RANDOM_WEIGHTS_WARNING
    assert m["kid_vgg"]["provenance"]["rng"].startswith("numpy.random.RandomState(2020)")
    assert m["kid_vgg"]["provenance"]["features"]["layer"] == "relu5_3" and "bilinear" in m["kid_vgg"]["provenance"][
        "input"]["resize"]
    assert m["lpips"]["provenance"]["weights"] == {"vgg16": RANDOM_WEIGHTS_WARNING, "lpips": RANDOM_WEIGHTS_WARNING}
    assert m["skvd"]["provenance"]["labels"]["target"]["method"] == "test"
    assert m["kid_vgg"]["provenance"]["device"] == "cpu" and m["swd"]["provenance"]["network"].startswith("none")
    assert set(doc["provenance"]["libraries"]) == {"numpy", "scipy", "torch", "pillow"}
    json.dumps(doc)  # plain JSON types only


def test_identity_enhancer_changes_nothing(tmp_path, hub_dir):
    exp = make_experiment(tmp_path, identity=True)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(), {}, True, "x", labels=exp.labels)
    m = doc["metrics"]
    assert m["lpips"]["enhanced"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert m["kid_vgg"]["enhanced"] == m["kid_vgg"]["identity"]
    assert m["skvd"]["enhanced"] == m["skvd"]["identity"] and m["ckvd"]["enhanced"] == m["ckvd"]["identity"]
    assert m["swd"]["enhanced"] == m["swd"]["identity"] and m["swd_lab"]["enhanced"] == m["swd_lab"]["identity"]


def test_semantic_metrics_without_label_maps_are_skipped_saying_what_to_pass(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(metrics=["skvd", "ckvd"]), {},
                       True, "x")
    assert "--src-labels" in doc["metrics"]["skvd"]["skipped"] and "skipped" in doc["metrics"]["ckvd"]


def test_skvd_size_wider_than_the_frames_is_an_error_naming_the_key(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    with pytest.raises(EpeflowError, match=r"`evaluate.skvd_size`"):
        run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(metrics=["skvd"], skvd_size=[48, 96]),
                     {}, True, "x", labels=exp.labels)


def test_pretrained_weights_and_clean_inputs_carry_no_warning(tmp_path, hub_dir, weight_files):
    exp = make_experiment(tmp_path, random=False)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(), weight_files, False, "x",
                       labels=exp.labels)
    assert doc["random_weights"] is False
    vgg_hash = hashlib.sha256(Path(weight_files["vgg16"]["path"]).read_bytes()).hexdigest()
    assert doc["metrics"]["skvd"]["provenance"]["features"]["weights"] == {"file": weight_files["vgg16"]["path"],
                                                                          "sha256": vgg_hash}
    assert doc["metrics"]["lpips"]["provenance"]["weights"]["lpips"]["sha256"] == hashlib.sha256(
        Path(weight_files["lpips"]["path"]).read_bytes()).hexdigest()
    assert "warning" not in doc and "warning" not in doc["provenance"]
    assert RANDOM_WEIGHTS_WARNING not in json.dumps(doc, ensure_ascii=False)


def test_random_enhanced_frames_mark_the_metrics(tmp_path, hub_dir, weight_files):
    exp = make_experiment(tmp_path, random=True)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(metrics=["lpips"]), weight_files,
                   False, "x")
    assert doc["random_weights"] is True and doc["warning"] == RANDOM_WEIGHTS_WARNING
    assert doc["provenance"]["random_models"] == [] and doc["provenance"]["enhanced_random_weights"]


def test_only_the_requested_metrics_run(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(metrics=["lpips"]), {}, True, "x")
    assert list(doc["metrics"]) == ["lpips"]
    assert doc["provenance"]["random_models"] == ["lpips"]  # the KID VGG16 was never built


def test_kid_with_a_single_enhanced_frame_is_skipped_saying_what_to_change(tmp_path, hub_dir):
    exp = make_experiment(tmp_path, test=(2,))
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(), {}, True, "x")
    m = doc["metrics"]
    assert "enhance.max_frames" in m["kid_vgg"]["skipped"] and "got 1 and 12" in m["fid_vgg"]["skipped"]
    assert m["lpips"]["enhanced"]["n"] == 1


def test_a_kid_subset_larger_than_the_enhanced_set_stops_before_any_feature(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    with pytest.raises(EpeflowError, match=r"got 4 and 12; set `evaluate.kid_subset_size` to at most 4"):
        run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(kid_subset_size=8), {}, False, "x")
    auto = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest,
                        _settings(kid_subset_size="auto", metrics=["kid_vgg"]), {}, True, "x")["metrics"]["kid_vgg"]
    assert auto["enhanced"]["subset_size"] == 4 and auto["enhanced"]["subset_size_rule"].startswith("auto")


def test_lpips_resizes_source_frames_to_the_enhanced_size(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    src = pd.read_parquet(exp.src_manifest)
    small = write_enhanced(tmp_path / "small", exp.src_manifest, {1: scene(1, "real", (24, 32))}, random=True)
    model, _ = build_lpips({}, allow_random=True)
    d = lpips_per_frame(model, [src.loc[1, "path"]], [small / f"{src.loc[1, 'id']}.png"], short_side=512)
    source = torch.nn.functional.interpolate(load_rgb(src.loc[1, "path"])[None], size=(24, 32), mode="bilinear",
                                             antialias=True, align_corners=False)
    with torch.no_grad():
        expected = model(source, load_rgb(small / f"{src.loc[1, 'id']}.png")[None])
    np.testing.assert_allclose(d, expected.double().numpy(), rtol=1e-5)


def test_cli_writes_metrics_json(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    out = tmp_path / "results" / "demo" / "metrics.json"
    spec = json.dumps({"kid_subsets": 5, "kid_subset_size": 4, "metrics": ["kid_vgg", "lpips", "skvd"],
                       "real_split": "train", "skvd_size": [48, 64]})
    rc = main(["evaluate", str(exp.enhanced), str(exp.src_manifest), str(exp.dst_manifest), str(out),
               "--src-labels", str(exp.src_labels), "--dst-labels", str(exp.dst_labels),
               "--spec", spec, "--weights", "{}", "--allow-random-weights", "--threads", "1"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["experiment"] == "demo" and doc["frames"]["real"] == 6
    assert doc["settings"]["kid_subsets"] == 5 and doc["settings"]["short_side"] == 512  # defaults filled
    assert set(doc["metrics"]) == {"kid_vgg", "lpips", "skvd"} and doc["warning"] == RANDOM_WEIGHTS_WARNING
    assert doc["metrics"]["skvd"]["enhanced"]["value"] is not None
    assert list(out.parent.iterdir()) == [out]  # atomic, and the colour-transfer frames are gone


def test_cli_reports_bad_input_without_traceback(tmp_path, hub_dir, capsys):
    exp = make_experiment(tmp_path)
    out = tmp_path / "demo" / "metrics.json"
    args = ["evaluate", str(exp.enhanced), str(exp.src_manifest), str(exp.dst_manifest), str(out), "--threads", "1"]
    assert main([*args, "--spec", '{"kid_subsets": 0}', "--allow-random-weights"]) == 2
    assert "experiments.demo.evaluate.kid_subsets" in capsys.readouterr().err
    assert main([*args, "--spec", "{}"]) == 2  # KID subsets of 1000 (torch-fidelity's default) from 4 frames
    assert "`evaluate.kid_subset_size` to at most 4" in capsys.readouterr().err
    assert main([*args, "--spec", '{"kid_subset_size": 4}']) == 2  # no weights and random ones not allowed
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_agrees_with_cpu(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    args = (exp.enhanced, exp.src_manifest, exp.dst_manifest, _settings(metrics=["kid_vgg", "lpips", "skvd"]), {},
            True, "x")
    cpu = run_evaluate(*args, device=torch.device("cpu"), labels=exp.labels)["metrics"]
    gpu = run_evaluate(*args, device=torch.device("cuda"), labels=exp.labels)["metrics"]  # bf16, channels_last
    assert gpu["lpips"]["enhanced"]["mean"] == pytest.approx(cpu["lpips"]["enhanced"]["mean"], rel=0.05)
    assert gpu["kid_vgg"]["enhanced"]["mean"] < gpu["kid_vgg"]["identity"]["mean"]
    assert gpu["skvd"]["pairs"] == cpu["skvd"]["pairs"]
    assert gpu["skvd"]["enhanced"]["value"] < gpu["skvd"]["identity"]["value"]
