"""`kid_inception` in the evaluate stage, with a random-weight Inception file in the FID layout.

`fid_inception` runs the same features through `epeflow.metrics.kid.fid` (compared with torch-fidelity in
test_inception.py); run here it would spend minutes in three 2048x2048 matrix square roots on this machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fixtures import make_experiment
from test_inception import random_state

from epeflow.config import validate_section
from epeflow.metrics.evaluate import run_evaluate
from epeflow.metrics.frames import collect_frames
from epeflow.metrics.inception import inception_features, load_inception
from epeflow.metrics.kid import kid


def test_inception_metrics_are_torch_fidelitys_numbers_with_provenance(tmp_path, hub_dir):
    exp = make_experiment(tmp_path, random=False)
    weights = tmp_path / "inception.pth"
    torch.save(random_state(), weights)
    settings = validate_section("evaluate", {"kid_subsets": 10, "kid_subset_size": 4, "max_frames": 6,
                                             "metrics": ["kid_inception"]}, ("test",))
    doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, settings,
                       {"inception": {"path": str(weights)}}, False, "x", threads=2)
    m = doc["metrics"]
    assert doc["random_weights"] is False  # the Inception file is used as given: never stamped random
    k = m["kid_inception"]
    assert k["enhanced"]["subset_size"] == 4 and k["enhanced"]["n_x"] == 4 and k["enhanced"]["n_y"] == 6
    # the number is KID (float32, torch-fidelity's draws) of the features of the stored frames
    model, _ = load_inception({"path": str(weights)})
    frames = collect_frames(exp.enhanced, exp.src_manifest, exp.dst_manifest, "all", 6, 0)
    expected = kid(inception_features(model, frames.enhanced), inception_features(model, frames.real), 10, 4,
                   dtype=np.float32)
    assert k["enhanced"]["mean"] == pytest.approx(expected.mean, rel=1e-6)
    p = k["provenance"]
    assert p["features"]["weights"]["file"] == str(weights) and len(p["features"]["weights"]["sha256"]) == 64
    assert p["features"]["layer"].startswith("pool3") and "TensorFlow 1.x bilinear" in p["input"]["resize"]
    assert p["statistics_dtype"].startswith("float32") and p["rng"].startswith("numpy.random.RandomState(2020)")
    assert p["samples"] == {"enhanced": 4, "identity": 4, "colour_transfer": 4, "real": 6}

